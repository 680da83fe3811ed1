"""batch_ops: stacking then splitting returns each request's rows; mismatches are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protos.errors import Internal, InvalidArgument
from runner_worker import batch_ops


@st.composite
def requests_along(draw):
    """Several requests with equal trailing shapes and a batch dim at a random axis."""
    ndim = draw(st.integers(1, 3))
    dim = draw(st.integers(0, ndim - 1))
    trailing = draw(st.lists(st.integers(0, 3), min_size=ndim - 1, max_size=ndim - 1))
    dtype = draw(st.sampled_from(["<f4", "<i8", "|b1", "<f2"]))
    rows = draw(st.lists(st.integers(0, 5), min_size=1, max_size=6))
    reqs = []
    for i, n in enumerate(rows):
        shape = list(trailing)
        shape.insert(dim, n)
        a = (np.arange(int(np.prod(shape))) + 100 * i).reshape(shape).astype(dtype)
        reqs.append([a, a * 2 if dtype != "|b1" else ~a])
    return dim, rows, reqs


@given(requests_along())
@settings(max_examples=150, deadline=None)
def test_stack_split_round_trip(case) -> None:
    dim, rows, reqs = case
    for req, n in zip(reqs, rows, strict=True):
        assert batch_ops.count_rows(req, dim) == n
    assert len({batch_ops.stack_key(r, dim) for r in reqs}) == 1
    stacked = batch_ops.stack(reqs, dim)
    assert batch_ops.count_rows(stacked, dim) == sum(rows)
    parts = batch_ops.split(stacked, rows, dim)
    for got, want in zip(parts, reqs, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype


@given(st.integers(1, 40), st.integers(1, 9))
def test_slice_then_join_restores_request(rows: int, chunk: int) -> None:
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    chunks = [batch_ops.slice_rows([x], s, min(s + chunk, rows), 0) for s in range(0, rows, chunk)]
    assert sum(c[0].shape[0] for c in chunks) == rows
    np.testing.assert_array_equal(batch_ops.join(chunks, 0)[0], x)


def test_batch_dim_pairs() -> None:
    assert batch_ops.normalize_batch_dim(0) == (0, 0)
    assert batch_ops.normalize_batch_dim((1, 0)) == (1, 0)
    with pytest.raises(InvalidArgument):
        batch_ops.normalize_batch_dim((0, 1, 2))


def test_keys_differ_on_dtype_and_trailing_shape() -> None:
    a = [np.zeros((2, 4), np.float32)]
    assert batch_ops.stack_key(a, 0) != batch_ops.stack_key([np.zeros((2, 4), np.float64)], 0)
    assert batch_ops.stack_key(a, 0) != batch_ops.stack_key([np.zeros((2, 5), np.float32)], 0)
    assert batch_ops.stack_key(a, 0) == batch_ops.stack_key([np.zeros((7, 4), np.float32)], 0)
    with pytest.raises(InvalidArgument):
        batch_ops.stack([a, [np.zeros((2, 5), np.float32)]], 0)


def test_inputs_must_agree_on_rows_and_have_a_batch_dim() -> None:
    with pytest.raises(InvalidArgument, match="disagree"):
        batch_ops.count_rows([np.zeros((2, 1)), np.zeros((3, 1))], 0)
    with pytest.raises(InvalidArgument, match="scalar"):
        batch_ops.count_rows([np.float32(1.0).reshape(())], 0)
    with pytest.raises(InvalidArgument, match="no batch dimension"):
        batch_ops.count_rows([np.zeros(3)], 1)
    with pytest.raises(InvalidArgument):
        batch_ops.count_rows([], 0)


def test_split_checks_output_rows() -> None:
    with pytest.raises(Internal, match="for a batch of 5 input rows"):
        batch_ops.split([np.zeros((4, 2))], [2, 3], 0)
    with pytest.raises(Internal, match="scalar"):
        batch_ops.split([np.float64(1.0).reshape(())], [1], 0)


def test_as_outputs_normalises_return_values() -> None:
    assert len(batch_ops.as_outputs((np.zeros(2), np.ones(2)))) == 2
    assert batch_ops.as_outputs(np.zeros(3))[0].shape == (3,)
    assert batch_ops.as_outputs([1, 2])[1].shape == ()


@given(st.lists(st.integers(0, 30), min_size=1, max_size=12), st.integers(0, 2))
@settings(max_examples=100, deadline=None)
def test_split_then_join_round_trips_arbitrary_row_counts(row_counts: list[int], dim: int) -> None:
    shape = [2, 3, 2]
    shape[dim] = sum(row_counts)
    out = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    parts = batch_ops.split([out, out * -1], row_counts, dim)
    assert [p[0].shape[dim] for p in parts] == row_counts
    joined = batch_ops.join(parts, dim)
    np.testing.assert_array_equal(joined[0], out)
    np.testing.assert_array_equal(joined[1], out * -1)
