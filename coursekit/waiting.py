"""Waiting for something to become true, with a bound: tenacity's retrying, in one place.

A bound, not a delay: each returns as soon as the check is true (steady(), which waits
for a value to stop changing, as soon as it has been still for its `quiet` time)."""

import inspect

from tenacity import AsyncRetrying, RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

INTERVAL = 0.05  # seconds between two checks


def _retrying(kind, timeout, interval):
    return kind(stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_result(lambda ok: not ok))


async def eventually(check, timeout=20, interval=INTERVAL):
    """Wait until `check()` (a coroutine function, or a plain one) returns something
    true; return that. Fails with an AssertionError after `timeout` seconds."""

    async def checked():
        result = check()
        return await result if inspect.isawaitable(result) else result

    try:
        return await _retrying(AsyncRetrying, timeout, interval)(checked)
    except RetryError:
        raise AssertionError(f"{getattr(check, '__name__', check)} was still false after {timeout} s") from None


def wait_until(check, timeout=20, interval=INTERVAL):
    """Wait until `check()` returns something true; return that. Fails with an
    AssertionError after `timeout` seconds."""
    try:
        return _retrying(Retrying, timeout, interval)(check)
    except RetryError:
        raise AssertionError(f"{getattr(check, '__name__', check)} was still false after {timeout} s") from None


async def steady(measure, quiet=0.5, timeout=20, interval=0.1):
    """Wait until `measure()` (a coroutine function, or a plain one) has given the same
    value for `quiet` seconds: a count that has stopped growing. Return that value.
    Fails with an AssertionError if it still changes after `timeout` seconds."""
    seen = []

    async def unchanged():
        result = measure()
        seen.append(await result if inspect.isawaitable(result) else result)
        samples = round(quiet / interval) + 1
        return len(seen) >= samples and len(set(seen[-samples:])) == 1

    await eventually(unchanged, timeout, interval)
    return seen[-1]
