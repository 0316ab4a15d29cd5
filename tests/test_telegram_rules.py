"""Telegram's rules that do not depend on a library: callback data, long texts, pace."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given
from hypothesis import strategies as st

from bot.channels.telegram_base import (
    CALLBACK_DATA_LIMIT,
    MESSAGE_LIMIT,
    RateLimiter,
    decode_callback,
    encode_callback,
    split_text,
)

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_:.0123456789", min_size=1, max_size=40)


@given(ids, ids)
def test_callback_data_round_trips_within_64_bytes(prompt_ref: str, choice_id: str) -> None:
    data = encode_callback(prompt_ref, choice_id)
    assert len(data.encode()) <= CALLBACK_DATA_LIMIT
    ref, choice = decode_callback(data)
    if len(f"{prompt_ref}|{choice_id}") <= CALLBACK_DATA_LIMIT:
        assert (ref, choice) == (prompt_ref, choice_id)
    else:
        assert ref == "" and choice_id.startswith(choice)


@given(st.text(alphabet=st.sampled_from("ab \n中文"), min_size=0, max_size=12000))
def test_long_texts_split_into_pieces_telegram_accepts(text: str) -> None:
    pieces = split_text(text)
    assert all(len(piece) <= MESSAGE_LIMIT for piece in pieces)
    assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )


def test_a_long_case_card_splits_at_line_breaks() -> None:
    lines = [f"• Timeline entry number {i}: a scan, a result, a decision" for i in range(200)]
    pieces = split_text("\n".join(lines))
    assert len(pieces) > 1
    assert all(piece.startswith("• Timeline entry") for piece in pieces)


def test_the_limiter_paces_one_chat_but_not_another() -> None:
    async def scenario() -> tuple[float, float]:
        limiter = RateLimiter(per_chat=(10.0, 2.0))
        start = time.monotonic()
        for _ in range(4):  # a burst of 2, then one every 0.1 s
            await limiter.acquire("42")
        paced = time.monotonic() - start
        start = time.monotonic()
        await limiter.acquire("43")
        other = time.monotonic() - start
        return paced, other

    paced, other = asyncio.run(scenario())
    assert paced >= 0.15
    assert other < 0.05


def test_groups_have_their_own_slower_pace() -> None:
    async def scenario() -> float:
        limiter = RateLimiter(per_group=(20.0, 1.0))
        start = time.monotonic()
        for _ in range(3):
            await limiter.acquire("-1001")
        return time.monotonic() - start

    assert asyncio.run(scenario()) >= 0.09
