"""Exceptions raised by the metric functions.

A few reference scorers crash on particular inputs (InternVL's ``post_process``
indexes ``pred[0]`` of an empty string, POPE divides by zero when nothing is
predicted positive). Our public functions raise a clear exception in those
cases instead of returning a made-up value. The exception also records which
built-in exception the reference raised, so that ``score()`` can report it in
the ``"EXCEPTION:<Name>"`` form used by ``metric_vectors.jsonl``.
"""

from __future__ import annotations


class ReferenceRaisesError(Exception):
    """The reference implementation raises on this input; see ``reference_exception``."""

    reference_exception: str = "Exception"


class ReferenceIndexError(ReferenceRaisesError, IndexError):
    """Where the reference raises IndexError (e.g. ``post_process`` on an empty prediction)."""

    reference_exception = "IndexError"


class ReferenceZeroDivisionError(ReferenceRaisesError, ZeroDivisionError):
    """Where the reference divides by zero (e.g. POPE precision with no positive prediction)."""

    reference_exception = "ZeroDivisionError"
