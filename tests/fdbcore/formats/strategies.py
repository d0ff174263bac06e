"""Hypothesis strategies shared by the format tests: adversarial keys and valid mutations."""

from __future__ import annotations

from hypothesis import strategies as st

from fdbcore.mutations import Mutation, MutationType

#: Keys full of edge cases: empty, 0x00 and 0xFF bytes (0xFF is the padding byte).
edgy = st.lists(st.sampled_from([b"\x00", b"\xff", b"a"]), max_size=6).map(b"".join)
keys = st.one_of(st.binary(max_size=16), edgy)


@st.composite
def clears(draw: st.DrawFn) -> Mutation:
    begin = draw(keys)
    end = draw(st.one_of(st.just(begin + b"\x00"), st.just(begin), keys.map(lambda k: begin + k)))
    return Mutation(MutationType.CLEAR_RANGE, begin, end)


others = st.builds(
    Mutation,
    st.sampled_from([t for t in range(MutationType.MAX_ATOMIC_OP) if t != MutationType.CLEAR_RANGE]),
    keys,
    st.binary(max_size=64),
)
mutations = st.one_of(clears(), others)
