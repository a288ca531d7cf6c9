"""Triton twins of :mod:`gpupage.core.rng`, in uint32 arithmetic.

The CPU side works mod 2**32 in int64 with masks; on the GPU the same values
come from native 32-bit unsigned multiplies (which wrap) and logical shifts,
so every kernel draws exactly the numbers the CPU path draws.
"""

import triton
import triton.language as tl

GOLDEN = 0x9E3779B9


@triton.jit
def fmix32(h):
    """murmur3's finaliser; ``h`` uint32."""
    h ^= h >> 16
    h = h * 0x85EBCA6B
    h ^= h >> 13
    h = h * 0xC2B2AE35
    h ^= h >> 16
    return h


@triton.jit
def stream_key(key, stream: tl.constexpr):
    """``gpupage.core.rng.stream_key``: ``key`` int64 lane key (< 2**32), returns uint32."""
    return fmix32(key.to(tl.uint32) ^ ((stream * 0x9E3779B9) & 0xFFFFFFFF))


@triton.jit
def draw(skey, position):
    """``gpupage.core.rng.draw``: ``skey`` uint32, ``position`` any int (taken mod 2**32)."""
    return fmix32(fmix32(skey ^ position.to(tl.uint32)) ^ 0x9E3779B9)


@triton.jit
def uniform_below(h, n):
    """``(h * n) >> 32`` for uint32 ``h`` and 0 < n < 2**31; returns int32."""
    return tl.umulhi(h, n.to(tl.uint32)).to(tl.int32)
