"""Static and continuous batching, token for token on traces small enough to follow by hand."""
import pytest

from llmbook.batching import Request, continuous_batching, request_trace, static_batching


def test_one_request_takes_a_prefill_and_one_step_per_further_token_either_way():
    trace = [Request(0, 3, 4)]
    for report in (static_batching(trace, 4, 8), continuous_batching(trace, 4, num_blocks=4, block_size=2)):
        assert (report.steps, report.finish, report.computed, report.padding) == (4, [4.0], 3 + 3, 0)


def test_static_batching_pads_prompts_and_keeps_finished_rows():
    trace = [Request(0, 2, 1), Request(0, 4, 3)]
    static = static_batching(trace, max_batch=2, max_new_tokens=5)
    # prefill: 2 rows x 4 positions for 6 prompt tokens; two decode steps of 2 rows for B alone
    assert (static.computed, static.padding, static.finish) == (8 + 2 + 2, 2 + 1 + 1, [3.0, 3.0])
    assert static.peak_kv_reserved == 2 * (4 + 5)
    cont = continuous_batching(trace, max_batch=2, num_blocks=8, block_size=2)
    assert (cont.computed, cont.padding, cont.finish) == (6 + 1 + 1, 0, [1.0, 3.0])
    assert cont.latency(trace) == [1.0, 3.0]


def test_a_late_request_joins_a_running_batch_instead_of_waiting_for_it():
    trace = [Request(0, 2, 5), Request(1.5, 2, 1)]
    assert static_batching(trace, 2, 5).finish == [5.0, 6.0]
    cont = continuous_batching(trace, 2, num_blocks=8, block_size=4)
    assert cont.finish == [5.0, 3.0]  # joins at time 2, its prompt computed with A's third token
    assert [round(t) for t, _, _ in cont.kv_trace] == [1, 2, 3, 4, 5]


def test_a_full_pool_preempts_the_newest_request_and_recomputes_it():
    trace = [Request(0, 2, 4), Request(0, 2, 4)]
    report = continuous_batching(trace, max_batch=2, num_blocks=3, block_size=2)
    assert report.preempted == 1
    assert report.finish == [4.0, 7.0]
    # B: prompt 2 at step 1, then (prompt + 1 token) recomputed at step 5, then two steps
    assert report.computed == (2 + 2) + 1 + 1 + 1 + 3 + 1 + 1
    assert report.peak_kv_reserved <= 3 * 2


def test_on_a_random_trace_continuous_batching_computes_each_token_once_and_never_pads():
    trace = request_trace(40, seed=3, mean_gap=2.0, prompt=(4, 40), output=(1, 60))
    cont = continuous_batching(trace, max_batch=8, num_blocks=400, block_size=16, fixed=1.0, per_token=0.01)
    assert cont.preempted == 0 and cont.padding == 0
    assert cont.computed == sum(r.prompt + r.output - 1 for r in trace)
    static = static_batching(trace, max_batch=8, max_new_tokens=60, fixed=1.0, per_token=0.01)
    assert static.computed > cont.computed and static.padding > 0
    assert all(f > r.arrival for f, r in zip(cont.finish + static.finish, trace + trace))
    assert static.peak_kv_reserved > cont.peak_kv_reserved >= cont.peak_kv_used


def test_bad_inputs_are_refused_with_the_limit_named():
    with pytest.raises(ValueError, match="output >= 1"):
        Request(0, 3, 0)
    with pytest.raises(ValueError, match="asks for 9 tokens > max_new_tokens 8"):
        static_batching([Request(0, 1, 9)], 2, 8)
    with pytest.raises(ValueError, match="needs 3 blocks of 4 positions; the pool has 2"):
        continuous_batching([Request(0, 5, 5)], 2, num_blocks=2, block_size=4)
    with pytest.raises(ValueError, match="no request"):
        continuous_batching([], 2, 8)
    with pytest.raises(ValueError, match="n must be >= 1"):
        request_trace(0)
