"""Wall time of `gpupage reproduce` (target: under 30 s on a 2-core CPU), cold and warm numba cache.

Cold = a fresh NUMBA_CACHE_DIR, so JIT compilation is included, as on a first run after install.
Usage: python scripts/bench_reproduce.py
"""

import os
import subprocess
import sys
import tempfile
import time


def timed(env) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpupage", "reproduce", "--out", out, "--quiet"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = timed(env)
        warm = min(timed(env) for _ in range(2))
    print(f"reproduce cold (JIT compile included): {cold:6.2f} s  = {cold / 30:.2f} x the 30 s target")
    print(f"reproduce warm (numba cache):          {warm:6.2f} s  = {warm / 30:.2f} x the 30 s target")


if __name__ == "__main__":
    main()
