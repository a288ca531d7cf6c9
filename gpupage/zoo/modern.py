"""Modern queue-based heuristics: S3-FIFO, SIEVE, W-TinyLFU and LIRS (CPU, numba).

Each follows libCacheSim's definition (``libCacheSim/cache/eviction/{S3FIFO,Sieve,WTinyLFU,LIRS}.c``)
for unit-size blocks, inside the contract of :mod:`gpupage.core.policies`: a miss evicts exactly one block
when K are resident, a hit never evicts.  Where libCacheSim's code leaves that contract, or does not
run at small K, the variant here differs, as stated per policy; ``tests/test_modern.py`` checks
equality with libCacheSim everywhere else.

* ``s3fifo`` (Yang et al., SOSP 2023): a small FIFO of S = max(1, floor(K/10)) blocks, a main FIFO
  of M = K - S and a ghost FIFO of floor(9K/10) evicted ids (libCacheSim's ghost-size-ratio 0.9:
  as many ids as main holds blocks).  A miss whose id is in the ghost enters main, any other enters
  small (main, until the first eviction, once small holds S).  A hit adds 1 to the block's counter,
  capped at 3.  Eviction takes from main while main holds more than M blocks or small is empty,
  else from small: small's oldest block moves to main (counter reset) when its counter is >= 2, else
  it is the victim and its id enters the ghost; main's oldest block is reinserted with its counter
  minus 1 while the counter is positive, else it is the victim.  libCacheSim refuses K < 10 and,
  with a one-block small FIFO (K < 20), admits only ghost hits; equal from K = 20 on.
* ``sieve`` (Zhang et al., NSDI 2024): one FIFO queue, a visited bit set by a hit; the hand walks
  from the oldest block toward the newest (wrapping), clearing bits, and evicts the first block
  whose bit is clear, then rests on the next newer one.  Equal to libCacheSim at every K.
* ``wtinylfu`` (Einziger et al., ToS 2017): a window LRU of W = max(1, floor(K/100)) blocks in front
  of a main SLRU of M = K - W (protected floor(4M/5), probation the rest, as in Caffeine).  Misses
  enter the window.  Eviction: while main has room the window's LRU block moves into it (probation if
  it has room, else protected); otherwise the window's LRU block (candidate) faces main's victim
  (probation's LRU, protected's when probation is empty): the candidate replaces it if its sketch
  estimate is strictly larger, else the candidate is the victim.  A probation hit moves the block
  to protected, demoting protected's LRU block to probation on overflow.  The frequency sketch is
  libCacheSim's ``minimalIncrementCBF`` for M entries at error 0.001: C = ceil(bpe * M) 32-bit
  counters (bpe = -ln(0.001) / ln(2)**2; 20 if that is under 10), 10 cells ((a + i b) mod 2**32)
  mod C with a, b the low 32 bits of XXH64 of the 8-byte key under seeds 0x12345678 and 0x12344321;
  an add increments all 10 cells (plain count-min: the conservative update is commented out there),
  an estimate is their minimum, and every counter halves after each 32 M main hits.  Adds: the
  missed block on insertion, every main hit (not window hits), and each window candidate once it
  is placed.  No doorkeeper (libCacheSim has none).  The key is the block's first-appearance rank
  in its lane (1, 2, ...), not its id, so a lane's result depends neither on block labels nor on
  the batch (whose ids ``simulate`` may remap); libCacheSim hashes its obj_id, so it agrees when
  given the rank-relabelled trace.  libCacheSim's SLRU sizes probation floor(M/5), leaving M mod 5
  blocks in no segment: probation then overflows and a hit can evict (SLRU cooling), and its
  window is empty below K = 100 (nothing is cached).  Equal when K >= 100 and M mod 5 = 0.
* ``lirs`` (Jiang & Zhang, SIGMETRICS 2002): H = max(1, floor(K/100)) resident HIR blocks (list Q),
  L = K - H LIR blocks, and the recency stack S of LIR, resident-HIR and non-resident-HIR entries,
  pruned so its bottom is LIR and bounded at 2K entries by dropping the oldest non-resident ones.
  As in libCacheSim: a new block becomes LIR while fewer than L are, a non-resident HIR block still
  in S returns as LIR (S's bottom LIR is demoted to Q first, Q's front evicted if Q is full), a hit
  on a resident HIR block in S makes it LIR (likewise demoting one).  One difference: on a hit to a
  resident HIR block that is not in S, libCacheSim also demotes S's bottom LIR block while L are
  LIR, evicting Q's front on a hit; here, as in the paper, the block only moves to Q's end and S's
  top.  Equal on every trace where libCacheSim never does that (K >= 3; K = 2 breaks its stack).
  K = 1 leaves no room for an LIR block: the one resident block is evicted, as by every policy.

State is per lane: slot-indexed doubly linked lists for the resident queues (SIEVE, W-TinyLFU),
ring buffers for S3-FIFO's FIFOs, and id-indexed lists for the ghosts and LIRS's stack, all O(1)
per request amortised; a lane's scratch is cleared by walking its trace afterwards.  SIEVE also
runs on CUDA (:mod:`kernels.modern`); the others answer backend='triton' with a one-line error.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..core.cpu import alloc_outputs, cpu_result, lane_chunks, lane_row, max_k

S3FIFO, SIEVE, WTINYLFU, LIRS = range(30, 34)

# W-TinyLFU's sketch: libCacheSim's minimalIncrementCBF(entries = main size, error = 0.001)
SKETCH_ERROR = 0.001
SKETCH_BPE = -math.log(SKETCH_ERROR) / 0.480453013918201  # ln(2)**2, the constant libCacheSim uses
SKETCH_HASHES = math.ceil(0.693147180559945 * SKETCH_BPE)  # 10
SKETCH_SEEDS = (0x12345678, 0x12344321)  # libCacheSim's HASH_SEED0, HASH_SEED1
DECAY_PER_ENTRY = 32  # counters halve after 32 * M main hits

_XXH_P1 = 0x9E3779B185EBCA87
_XXH_P2 = 0xC2B2AE3D27D4EB4F
_XXH_P3 = 0x165667B19E3779F9
_XXH_P4 = 0x85EBCA77C2B2AE63
_XXH_P5 = 0x27D4EB2F165667C5

# list ids: W-TinyLFU's three queues share one slot-indexed link array
WINDOW, PROBATION, PROTECTED = 0, 1, 2
# S3-FIFO: where a block is
S_SMALL, S_MAIN, S_GHOST = 1, 2, 3
# LIRS: flag bits of a block
IN_S, IS_LIR, RESIDENT, IN_Q = 1, 2, 4, 8
MASK32 = 0xFFFFFFFF


def sketch_cells(M) -> np.ndarray:
    """Counters of libCacheSim's sketch for ``M`` entries (its float formula, evaluated as it does)."""
    C = np.ceil(SKETCH_BPE * np.asarray(M, dtype=np.float64))
    C = np.minimum(C, 2**31 - 1).astype(np.int64)
    return np.where(C < SKETCH_HASHES, 2 * SKETCH_HASHES, C)


def _rotl(v, r):
    return (v << np.uint64(r)) | (v >> np.uint64(64 - r))


def xxh64_u64(v, seed: int) -> np.ndarray:
    """XXH64 of each value's 8 little-endian bytes (uint64 arithmetic wraps in numpy arrays)."""
    v = np.asarray(v, dtype=np.uint64)
    p1, p2, p3, p4 = (np.uint64(p) for p in (_XXH_P1, _XXH_P2, _XXH_P3, _XXH_P4))
    h = np.full(v.shape, (seed + _XXH_P5 + 8) & (2**64 - 1), dtype=np.uint64)
    h ^= _rotl(v * p2, 31) * p1
    h = _rotl(h, 27) * p1 + p4
    h ^= h >> np.uint64(33)
    h *= p2
    h ^= h >> np.uint64(29)
    h *= p3
    h ^= h >> np.uint64(32)
    return h


def rank_hashes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) int64 [n + 1]: the low 32 bits of XXH64 of rank r under each seed (index 0 unused)."""
    r = np.arange(n + 1, dtype=np.uint64)
    return tuple((xxh64_u64(r, s) & np.uint64(MASK32)).astype(np.int64) for s in SKETCH_SEEDS)


# ----------------------------------------------------------------------------------------------
# intrusive doubly linked lists: prv/nxt per node (older/newer), ends[l, 0] oldest, ends[l, 1] newest


@njit(inline="always", cache=True)
def _push(prv, nxt, ends, l, i):
    j = ends[l, 1]
    prv[i] = j
    nxt[i] = -1
    if j >= 0:
        nxt[j] = i
    else:
        ends[l, 0] = i
    ends[l, 1] = i


@njit(inline="always", cache=True)
def _unlink(prv, nxt, ends, l, i):
    p = prv[i]
    q = nxt[i]
    if p >= 0:
        nxt[p] = q
    else:
        ends[l, 0] = q
    if q >= 0:
        prv[q] = p
    else:
        ends[l, 1] = p


@njit(inline="always", cache=True)
def _to_newest(prv, nxt, ends, l, i):
    # a leaf, like _push and _unlink: numba's nested inlining leaves reference counting in hot loops
    j = ends[l, 1]
    if j != i:
        p = prv[i]
        q = nxt[i]
        if p >= 0:
            nxt[p] = q
        else:
            ends[l, 0] = q
        prv[q] = p
        prv[i] = j
        nxt[i] = -1
        nxt[j] = i
        ends[l, 1] = i


# ----------------------------------------------------------------------------------------------


@njit(cache=True)
def _lane_s3fifo(trace, k, want, hits_row, victims_row, where, freq, small, main, gprv, gnxt, ends):
    T = trace.shape[0]
    S = max(1, k // 10)
    M = k - S
    G = 9 * k // 10
    ns = nm = ng = 0
    sh = mh = 0  # ring heads (oldest)
    evicted = False
    ends[0, 0] = ends[0, 1] = -1
    faults = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        w = where[x]
        if w == S_SMALL or w == S_MAIN:
            if want:
                hits_row[t] = 1
            if freq[x] < 3:
                freq[x] += 1
            continue
        faults += 1
        if w == S_GHOST:
            _unlink(gprv, gnxt, ends, 0, x)
            ng -= 1
        if ns + nm == k:
            evicted = True
            v = -1
            while v < 0:
                if nm > M or ns == 0:
                    while v < 0:
                        y = main[mh]
                        mh = mh + 1 if mh + 1 < k else 0
                        if freq[y] > 0:
                            freq[y] -= 1
                            main[(mh + nm - 1) % k] = y
                        else:
                            nm -= 1
                            where[y] = 0
                            v = y
                else:
                    while ns > 0 and v < 0:
                        y = small[sh]
                        sh = sh + 1 if sh + 1 < k else 0
                        ns -= 1
                        if freq[y] >= 2:
                            freq[y] = 0
                            main[(mh + nm) % k] = y
                            nm += 1
                            where[y] = S_MAIN
                        else:
                            v = y
                            where[y] = 0
                            if G > 0:
                                if ng == G:
                                    z = ends[0, 0]
                                    _unlink(gprv, gnxt, ends, 0, z)
                                    where[z] = 0
                                    ng -= 1
                                _push(gprv, gnxt, ends, 0, y)
                                where[y] = S_GHOST
                                ng += 1
            if want:
                victims_row[t] = v
        if w == S_GHOST or (not evicted and ns >= S):
            main[(mh + nm) % k] = x
            nm += 1
            where[x] = S_MAIN
        else:
            small[(sh + ns) % k] = x
            ns += 1
            where[x] = S_SMALL
        freq[x] = 0
    for t in range(T):
        if trace[t] >= 0:
            where[trace[t]] = 0
    return faults


@njit(cache=True)
def _lane_sieve(trace, k, want, hits_row, victims_row, slot_of, blk, visited, prv, nxt, ends):
    T = trace.shape[0]
    n = 0
    hand = -1  # -1: start from the oldest block
    ends[0, 0] = ends[0, 1] = -1
    faults = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        s = slot_of[x]
        if s >= 0:
            if want:
                hits_row[t] = 1
            visited[s] = True
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            s = hand if hand >= 0 else ends[0, 0]
            while visited[s]:
                visited[s] = False
                s = nxt[s] if nxt[s] >= 0 else ends[0, 0]
            hand = nxt[s]
            _unlink(prv, nxt, ends, 0, s)
            slot_of[blk[s]] = -1
            if want:
                victims_row[t] = blk[s]
        blk[s] = x
        slot_of[x] = s
        visited[s] = False
        _push(prv, nxt, ends, 0, s)
    for i in range(n):
        slot_of[blk[i]] = -1
    return faults


@njit(cache=True)
def _estimate(bf, cell, x):
    est = bf[cell[x, 0]]
    for i in range(1, SKETCH_HASHES):
        est = min(est, bf[cell[x, i]])
    return est


@njit(cache=True)
def _add(bf, cell, x):
    for i in range(SKETCH_HASHES):
        bf[cell[x, i]] += 1


@njit(cache=True)
def _lane_wtinylfu(trace, k, C, want, hits_row, victims_row, slot_of, cell, ha, hb, bf,
                   blk, lst, prv, nxt, ends, cnt):
    """cell[x]: block x's sketch counters, computed at its first request in the lane (-1: not yet)."""
    T = trace.shape[0]
    M = k - max(1, k // 100)
    P1 = 4 * M // 5
    P0 = M - P1
    decay_at = DECAY_PER_ENTRY * M
    for i in range(C):
        bf[i] = 0
    for l in range(3):
        ends[l, 0] = ends[l, 1] = -1
        cnt[l] = 0
    n = 0
    nr = 0  # distinct blocks seen: the next rank
    main_hits = 0
    faults = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        if cell[x, 0] < 0:
            nr += 1
            for i in range(SKETCH_HASHES):
                cell[x, i] = ((ha[nr] + i * hb[nr]) & MASK32) % C
        s = slot_of[x]
        if s >= 0:
            if want:
                hits_row[t] = 1
            l = lst[s]
            if l == WINDOW or l == PROTECTED:
                _to_newest(prv, nxt, ends, l, s)
                if l == WINDOW:
                    continue
            else:
                _unlink(prv, nxt, ends, PROBATION, s)
                _push(prv, nxt, ends, PROTECTED, s)
                lst[s] = PROTECTED
                cnt[PROBATION] -= 1
                if cnt[PROTECTED] == P1:  # full: its LRU block goes back to probation
                    d = ends[PROTECTED, 0]
                    _unlink(prv, nxt, ends, PROTECTED, d)
                    _push(prv, nxt, ends, PROBATION, d)
                    lst[d] = PROBATION
                    cnt[PROBATION] += 1
                else:
                    cnt[PROTECTED] += 1
            _add(bf, cell, x)
            main_hits += 1
            if main_hits >= decay_at:
                main_hits = 0
                for i in range(C):
                    bf[i] >>= 1
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            s = -1
            while s < 0:
                if cnt[WINDOW] == 0:  # only main holds blocks
                    l = PROBATION if cnt[PROBATION] > 0 else PROTECTED
                    s = ends[l, 0]
                    _unlink(prv, nxt, ends, l, s)
                    cnt[l] -= 1
                    break
                c = ends[WINDOW, 0]
                if cnt[PROBATION] + cnt[PROTECTED] == M and M > 0:  # candidate against main's victim
                    lm = PROBATION if cnt[PROBATION] > 0 else PROTECTED
                    m = ends[lm, 0]
                    if _estimate(bf, cell, blk[c]) > _estimate(bf, cell, blk[m]):
                        _unlink(prv, nxt, ends, lm, m)
                        cnt[lm] -= 1
                        s = m
                    else:
                        s = c
                elif M == 0:
                    s = c
                _unlink(prv, nxt, ends, WINDOW, c)
                cnt[WINDOW] -= 1
                if s != c:  # the candidate moves into main
                    l = PROBATION if cnt[PROBATION] < P0 else PROTECTED
                    _push(prv, nxt, ends, l, c)
                    lst[c] = l
                    cnt[l] += 1
                _add(bf, cell, blk[c])
            v = blk[s]
            slot_of[v] = -1
            if want:
                victims_row[t] = v
        blk[s] = x
        slot_of[x] = s
        lst[s] = WINDOW
        _push(prv, nxt, ends, WINDOW, s)
        cnt[WINDOW] += 1
        _add(bf, cell, x)
    for t in range(T):
        x = trace[t]
        if x >= 0:
            slot_of[x] = -1
            cell[x, 0] = -1
    return faults


@njit(cache=True)
def _lane_lirs(trace, k, want, hits_row, victims_row, st, sprv, snxt, qprv, qnxt, nprv, nnxt, ends):
    """Lists in ``ends``: 0 = stack S (oldest = bottom), 1 = Q (oldest = front), 2 = the non-resident
    entries of S.  The request's block is handled first; the demotion of S's bottom LIR block, Q's
    eviction and S's pruning it calls for follow, in that order, written once (helpers taking these
    arrays cost numba a reference count per array per call)."""
    T = trace.shape[0]
    H = max(1, k // 100)
    L = k - H
    nlir = nhir = ns = nnr = 0  # LIR blocks, resident HIR blocks, entries of S, non-resident entries of S
    for l in range(3):
        ends[l, 0] = ends[l, 1] = -1
    faults = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        f = st[x]
        if k == 1:  # no room for an LIR block: the one resident block goes
            if f:
                if want:
                    hits_row[t] = 1
                continue
            faults += 1
            if nhir:
                y = ends[1, 0]
                _unlink(qprv, qnxt, ends, 1, y)
                st[y] = 0
                if want:
                    victims_row[t] = y
            st[x] = RESIDENT | IN_Q
            _push(qprv, qnxt, ends, 1, x)
            nhir = 1
            continue
        if f & IN_S:
            _to_newest(sprv, snxt, ends, 0, x)
        if f & IN_Q:
            _to_newest(qprv, qnxt, ends, 1, x)
        demote = False
        prune = False
        if f & RESIDENT:
            if want:
                hits_row[t] = 1
            if f & IS_LIR:
                prune = True
            elif f & IN_S:  # a resident HIR block reused within S: it becomes LIR
                _unlink(qprv, qnxt, ends, 1, x)
                nhir -= 1
                demote = nlir == L
                st[x] = IN_S | IS_LIR | RESIDENT
                nlir += 1
            else:  # a resident HIR block outside S: back on S's top, still HIR
                _push(sprv, snxt, ends, 0, x)
                ns += 1
                st[x] = f | IN_S
        else:
            faults += 1
            if f & IN_S:  # non-resident, reused within S: returns as LIR
                _unlink(nprv, nnxt, ends, 2, x)
                nnr -= 1
                demote = nlir == L
                st[x] = IN_S | IS_LIR | RESIDENT
                nlir += 1
            else:
                _push(sprv, snxt, ends, 0, x)
                ns += 1
                if nlir < L:
                    st[x] = IN_S | IS_LIR | RESIDENT
                    nlir += 1
                else:
                    st[x] = IN_S | RESIDENT | IN_Q
                    _push(qprv, qnxt, ends, 1, x)
                    nhir += 1
        if demote:  # S's bottom LIR block (not x: x is on top) becomes a resident HIR block at Q's end
            y = ends[0, 0]
            _unlink(sprv, snxt, ends, 0, y)
            ns -= 1
            nlir -= 1
            st[y] = RESIDENT | IN_Q
            _push(qprv, qnxt, ends, 1, y)
            nhir += 1
            prune = True
        if nhir > H:  # Q's front leaves the cache; in S it stays as a non-resident entry
            y = ends[1, 0]
            _unlink(qprv, qnxt, ends, 1, y)
            nhir -= 1
            if want:
                victims_row[t] = y
            if st[y] & IN_S:
                st[y] = IN_S
                _push(nprv, nnxt, ends, 2, y)
                nnr += 1
            else:
                st[y] = 0
        while prune and ns > 1:  # S's bottom must be LIR (one entry always stays)
            y = ends[0, 0]
            if st[y] & IS_LIR:
                break
            if not st[y] & RESIDENT:
                _unlink(nprv, nnxt, ends, 2, y)
                nnr -= 1
            _unlink(sprv, snxt, ends, 0, y)
            ns -= 1
            st[y] &= ~IN_S
        while ns > 2 * k and nnr > 0:  # bound S: forget the oldest non-resident entries
            y = ends[2, 0]
            _unlink(nprv, nnxt, ends, 2, y)
            _unlink(sprv, snxt, ends, 0, y)
            ns -= 1
            nnr -= 1
            st[y] = 0
    for t in range(T):
        if trace[t] >= 0:
            st[trace[t]] = 0
    return faults


@njit(parallel=True, cache=True)
def _simulate_batch(traces, K, code, n_ids, cells, ha, hb, want, hits, victims, faults, nchunks):
    B = K.shape[0]
    kmax = max_k(K)
    cmax = 1
    for b in range(B):
        cmax = max(cmax, cells[b])
    by_slot = code == SIEVE or code == WTINYLFU  # resident blocks in slot-indexed lists
    for ch in prange(nchunks):
        slot_of = np.full(n_ids if by_slot else 1, -1, dtype=np.int32)
        state = np.zeros(1 if by_slot else n_ids, dtype=np.int8)  # s3fifo: where; lirs: flags
        freq = np.zeros(n_ids if code == S3FIFO else 1, dtype=np.int8)
        cell = np.full((n_ids if code == WTINYLFU else 1, SKETCH_HASHES), -1, dtype=np.int32)
        bf = np.empty(cmax if code == WTINYLFU else 1, dtype=np.uint32)
        # id-indexed links: S3-FIFO's ghost; LIRS's S, Q and non-resident lists
        iprv = np.empty((3 if code == LIRS else 1, 1 if by_slot else n_ids), dtype=np.int32)
        inxt = np.empty_like(iprv)
        blk = np.empty(kmax, dtype=np.int64)
        ring = np.empty(kmax, dtype=np.int64)
        prv = np.empty(kmax, dtype=np.int32)
        nxt = np.empty(kmax, dtype=np.int32)
        lst = np.empty(kmax, dtype=np.int8)
        visited = np.zeros(kmax, dtype=np.bool_)
        ends = np.empty((3, 2), dtype=np.int32)
        cnt = np.zeros(4, dtype=np.int64)
        for b in range(ch * B // nchunks, (ch + 1) * B // nchunks):
            row = b if want else 0
            k = min(K[b], kmax)
            trace = lane_row(traces, b)
            if code == S3FIFO:
                faults[b] = _lane_s3fifo(trace, k, want, hits[row], victims[row], state, freq, blk, ring,
                                         iprv[0], inxt[0], ends)
            elif code == SIEVE:
                faults[b] = _lane_sieve(trace, k, want, hits[row], victims[row], slot_of, blk, visited,
                                        prv, nxt, ends)
            elif code == WTINYLFU:
                faults[b] = _lane_wtinylfu(trace, k, cells[b], want, hits[row], victims[row], slot_of, cell,
                                           ha, hb, bf, blk, lst, prv, nxt, ends, cnt)
            else:
                faults[b] = _lane_lirs(trace, k, want, hits[row], victims[row], state, iprv[0], inxt[0],
                                       iprv[1], inxt[1], iprv[2], inxt[2], ends)


def simulate_cpu(traces: np.ndarray, policy, K: np.ndarray, rkeys: np.ndarray, n_ids: int,
                 return_hits: bool = False, options: dict | None = None):
    """The :func:`gpupage.core.cpu.simulate_cpu` contract for s3fifo, sieve, wtinylfu and lirs (no options)."""
    code = policy.code
    B, T = len(K), traces.shape[1]
    # K >= T behaves exactly like K = T (no eviction ever happens): no huge scratch
    K = np.minimum(np.asarray(K, dtype=np.int64), max(T, 1))
    n_ids = max(n_ids, 1)
    if code == WTINYLFU:
        cells = sketch_cells(K - np.maximum(1, K // 100))  # the main SLRU's size
        ha, hb = rank_hashes(n_ids)
    else:
        cells = np.zeros(B, dtype=np.int64)
        ha = hb = np.zeros(1, dtype=np.int64)
    faults, hits, victims = alloc_outputs(B, T, return_hits)
    _simulate_batch(traces, K, code, n_ids, cells, ha, hb, return_hits, hits, victims, faults, lane_chunks(B))
    return cpu_result(faults, hits, victims, return_hits)

