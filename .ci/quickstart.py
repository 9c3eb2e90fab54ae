"""Run the README's quickstart block as written (``.ci/wheel-check``, from the installed wheel).

Usage: ``python quickstart.py README.md``. The block is the first ``python`` fence under
``## Quickstart``, the one ``tests/test_api.py`` runs against the checkout.
"""

import re
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text(encoding="utf-8")
match = re.search(r"```python\n(.*?)```", text.split("## Quickstart", 1)[1], flags=re.S)
if match is None:
    raise SystemExit("README.md has no python block under '## Quickstart'")
namespace: dict = {}
exec(compile(match.group(1), "README.md", "exec"), namespace)
print("quickstart ran:", sorted(namespace["result"].report)[:3], "...")
