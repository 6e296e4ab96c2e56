"""The bounded memo behind the decoded and rendered note caches."""

from __future__ import annotations

import threading

from server.memo import Memo


def test_a_memo_keeps_at_most_its_size_dropping_the_oldest_first():
    memo: Memo[int] = Memo(3)
    for i in range(5):
        assert memo.put(("k", i), i) == i
    assert [memo.get(("k", i)) for i in range(5)] == [None, None, 2, 3, 4]


def test_a_memo_of_size_zero_keeps_nothing():
    memo: Memo[str] = Memo(3)
    memo.put("a", "x")
    memo.resize(0)
    assert memo.get("a") is None
    assert memo.put("b", "y") == "y"
    assert memo.get("b") is None


def test_threads_racing_on_a_full_memo_never_fail_nor_overfill_it():
    memo: Memo[int] = Memo(64)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        try:
            for i in range(5_000):
                memo.put((t, i), i)
                memo.get((t, i - 1))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(memo._values) <= 64 + 8  # at most one in-flight put per thread over the bound
