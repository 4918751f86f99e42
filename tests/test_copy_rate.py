"""Copy rate: the share of generated words found in the source."""

import pytest

from src.evaluation.copy_rate import copied_words, copy_rate, mean_words


def test_copy_rate_counts_tokens_not_types_over_all_lines():
    # line 1: "the" x2 and "cat" copied, "ran" not -> 3 of 4; line 2: nothing copied, 2 words
    assert copied_words("the cat the ran", "the cat sat") == (3, 4)
    assert copy_rate(["the cat the ran", "dog barks"], ["the cat sat", "a bird"]) == pytest.approx(3 / 6)


def test_copy_rate_edge_cases():
    assert copy_rate(["", ""], ["a", "b"]) == 0.0  # no word at all
    assert copy_rate(["a b"], ["b a"]) == 1.0
    assert mean_words([]) == 0.0
    with pytest.raises(ValueError, match="2 texts but 1 sources"):
        copy_rate(["a", "b"], ["a"])
