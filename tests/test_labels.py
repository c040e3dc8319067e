import numpy as np
import pytest

from ferkit.labels import EMOTIONS, emotion_id, resolve_classes


def test_all_is_identity():
    cs = resolve_classes("all")
    assert cs.names == EMOTIONS
    keep, mapped = cs.apply(np.arange(7))
    assert keep.all() and (mapped == np.arange(7)).all()


def test_six_merges_disgust_into_angry():
    cs = resolve_classes("6")
    assert "disgust" not in cs.names and len(cs) == 6
    keep, mapped = cs.apply(np.array([0, 1, 3]))
    assert keep.all()
    assert mapped[0] == mapped[1] == cs.names.index("angry")
    assert cs.names[mapped[2]] == "happy"


def test_subset_drops_other_emotions_and_keeps_given_order():
    cs = resolve_classes("happy, sad,neutral")
    assert cs.names == ("happy", "sad", "neutral")
    keep, mapped = cs.apply(np.array([3, 0, 4, 6, 2]))
    assert keep.tolist() == [True, False, True, True, False]
    assert mapped.tolist() == [0, 1, 2]


def test_aliases_are_accepted():
    assert emotion_id("Happiness") == EMOTIONS.index("happy")
    assert emotion_id("surprised") == EMOTIONS.index("surprise")


@pytest.mark.parametrize("spec, message", [
    ("happy,sadd", "did you mean 'sad'"),
    ("happy,happy", "twice"),
    ("happy", "at least two"),
])
def test_bad_class_sets_say_why(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_classes(spec)
