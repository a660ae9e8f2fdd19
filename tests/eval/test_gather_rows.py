"""`gather_rows`: the one cross-rank gather of prediction rows (JudgeEvalCallback and `paralm predict`).

Each rank answers its own share of a split; the written predictions hold every rank's rows in one order,
(key, qa_index, question), whatever the rank count."""

import torch.distributed as dist

from paralm.eval.generation import gather_rows
from paralm.formats.predictions import PredictionRow


def row(key: str, qa_index: int | None = 0, question: str = "q") -> PredictionRow:
    return PredictionRow(key=key, question=question, type="C", reference="r", answer="a",
                         extra={"qa_index": qa_index})


def order(rows):
    return [(r.key, r.extra["qa_index"], r.question) for r in rows]


def test_one_process_gets_its_own_rows_sorted_as_a_new_list():
    local = [row("b", 1), row("a", 0, "z"), row("b", None), row("a", 0, "y")]
    gathered = gather_rows(local)
    assert order(gathered) == [("a", 0, "y"), ("a", 0, "z"), ("b", None, "q"), ("b", 1, "q")]
    assert gathered is not local and order(local)[0] == ("b", 1, "q")  # the caller's list is left as it was


def test_two_ranks_get_both_shares_in_one_order(monkeypatch):
    other_rank = [row("a", 1), row("c", 0)]

    def all_gather_object(parts, mine):
        parts[0], parts[1] = mine, [r.to_dict() for r in other_rank]

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    gathered = gather_rows([row("b", 0), row("a", 0)])
    assert order(gathered) == [("a", 0, "q"), ("a", 1, "q"), ("b", 0, "q"), ("c", 0, "q")]
    assert all(isinstance(r, PredictionRow) for r in gathered)
