"""Issue 27 (item 4): a posterior a notebook can read — its repr and its table."""

import pytest
import torch

import pyrocompress as pc


@pytest.fixture(scope="module")
def fitted():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 4, generator=g)
    y = (X[:, 0] - X[:, 1] > 0).long()
    bnn = pc.bayesianize(
        pc.mlp([4, 6, 2]), "group-horseshoe", feature_names=["w", "x", "y", "z"], seed=0
    )
    pc.fit(bnn, (X, y), epochs=3, batch_size=32, progress=False, seed=0)
    return bnn, X


def test_the_repr_names_the_prior_and_the_layers(fitted):
    bnn, _ = fitted
    text = repr(pc.Posterior(bnn))
    assert text == "Posterior(group-horseshoe; '1': 4 groups, '3': 6 groups)"


def test_the_table_has_one_row_per_group_with_the_posteriors_numbers(fitted):
    bnn, X = fitted
    post = pc.Posterior(bnn)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    table = post.to_dataframe(result.plan.masks)
    assert len(table) == 4 + 6
    assert table["name"].tolist()[:4] == ["w", "x", "y", "z"]
    assert table["name"].tolist()[4:] == [f"3[{g}]" for g in range(6)]
    for layer in post.layer_names:
        rows = table[table["layer"] == layer]
        assert rows["group"].tolist() == list(range(len(rows)))
        torch.testing.assert_close(
            torch.tensor(rows["log_alpha"].tolist(), dtype=torch.float64),
            post.log_alpha()[layer].double(),
        )
        torch.testing.assert_close(
            torch.tensor(rows["snr"].tolist(), dtype=torch.float64),
            post.snr("group")[layer].double(),
        )
        torch.testing.assert_close(
            torch.tensor(rows["pip"].tolist(), dtype=torch.float64),
            post.inclusion_probabilities()[layer].double(),
        )
        assert rows["kept"].tolist() == result.plan.masks[layer].tolist()
    assert "kept" not in post.to_dataframe().columns


def test_a_prior_without_inclusion_probabilities_has_no_pip_column():
    bnn = pc.bayesianize(pc.mlp([3, 4, 2]), "gaussian", seed=0)
    assert "pip" not in pc.Posterior(bnn).to_dataframe().columns
