from core.conversations.sweeper import interleave


def test_lost_work_is_requeued_round_robin_over_organisations():
    a = [("a", "e1"), ("a", "e2"), ("a", "e3")]
    b = [("b", "e4")]
    c = [("c", "e5"), ("c", "e6")]
    assert interleave([a, b, c]) == [("a", "e1"), ("b", "e4"), ("c", "e5"), ("a", "e2"), ("c", "e6"), ("a", "e3")]
    assert interleave([]) == [] and interleave([[], a]) == a
