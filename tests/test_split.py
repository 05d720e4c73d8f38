import numpy as np
import pandas as pd
import pytest

from ich.data.sampling import balance
from ich.data.split import assert_no_leakage, patient_labels, split_patients


def _patients(n=100, positive=0.3):
    return pd.DataFrame(
        {"patient_id": [f"P{i:03d}" for i in range(n)], "any": (np.arange(n) < positive * n).astype(int)}
    )


def test_holdout_fractions_stratification_and_no_overlap():
    split = split_patients(_patients(), fractions=(0.6, 0.2, 0.2), folds=5, seed=3)
    counts = split["set"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (60, 20, 20)
    assert split["patient_id"].is_unique
    rates = split.groupby("set")["any"].mean()
    assert np.allclose(rates, 0.3, atol=0.05)
    assert sorted(split["fold"].unique()) == [0, 1, 2, 3, 4]
    assert split.groupby("fold")["any"].mean().between(0.25, 0.35).all()


def test_split_is_deterministic_and_seed_dependent():
    a = split_patients(_patients(), seed=0)
    pd.testing.assert_frame_equal(a, split_patients(_patients(), seed=0))
    assert not a.equals(split_patients(_patients(), seed=1))


def test_kfold_mode_uses_one_fold_for_test_and_the_next_for_validation():
    split = split_patients(_patients(), folds=5, mode="kfold", test_fold=4)
    assert (split.loc[split["set"] == "test", "fold"] == 4).all()
    assert (split.loc[split["set"] == "val", "fold"] == 0).all()
    assert split["set"].value_counts()["train"] == 60


def test_leakage_check_catches_a_study_in_two_sets(tiny_cohort, tiny_split):
    index = tiny_cohort["index"]
    assert_no_leakage(index, tiny_split)
    leaky = index.copy()
    other = tiny_split.loc[tiny_split["set"] != tiny_split["set"].iloc[0], "patient_id"].iloc[0]
    leaky.loc[leaky.index[0], "patient_id"] = other  # one slice of a study now belongs to another patient
    with pytest.raises(AssertionError, match="studies split across sets"):
        assert_no_leakage(leaky, tiny_split)


def test_patient_labels_marks_a_patient_positive_if_any_slice_is():
    index = pd.DataFrame({"patient_id": ["a", "a", "b"], "any": [0, 1, 0], "cohort": ["x", "x", "y"]})
    table = patient_labels(index).set_index("patient_id")
    assert table["any"].to_dict() == {"a": 1, "b": 0} and table["cohort"].to_dict() == {"a": "x", "b": "y"}


@pytest.mark.parametrize("mode", ["kfold", "holdout"])
def test_a_second_cohort_gets_its_own_folds_and_moves_no_patient_of_the_first(mode):
    """A hospital whose every patient bleeds (PHE-SICH) joins the cohort: the first hospital's
    sets and folds stay as they were alone, and the second is spread over every fold and set."""
    first = _patients().assign(cohort="ct_ich")
    second = pd.DataFrame({"patient_id": [f"Q{i:02d}" for i in range(40)], "any": 1, "cohort": "phe_sich"})
    alone = split_patients(first, mode=mode, folds=5, test_fold=2, seed=0)
    both = split_patients(pd.concat([first, second]), mode=mode, folds=5, test_fold=2, seed=0)
    assert both["patient_id"].is_unique and len(both) == 140
    pd.testing.assert_frame_equal(both[both["patient_id"].str.startswith("P")].reset_index(drop=True), alone)
    added = both[both["patient_id"].str.startswith("Q")]
    assert added["fold"].value_counts().to_dict() == dict.fromkeys(range(5), 8)
    assert set(added["set"]) == {"train", "val", "test"}


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        split_patients(_patients(), fractions=(0.5, 0.2, 0.2))


@pytest.mark.parametrize("policy", ["none", "undersample", "oversample", "weighted_sampler", "loss_weights"])
def test_balancing_policies(policy):
    labels = np.array([1] * 10 + [0] * 90)
    plan = balance(labels, policy, ratio=2.0, seed=0)
    drawn = labels[plan.rows]
    if policy == "undersample":
        assert drawn.sum() == 10 and (drawn == 0).sum() == 20
    elif policy == "oversample":
        assert (drawn == 0).sum() == 90 and drawn.sum() == 180
    elif policy == "weighted_sampler":
        w = plan.sample_weights
        assert np.isclose(w[labels == 1].sum(), w[labels == 0].sum())
    elif policy == "loss_weights":
        assert plan.pos_weight == 9.0
    else:
        assert len(plan.rows) == 100 and plan.sample_weights is None and plan.pos_weight is None
