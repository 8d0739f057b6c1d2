"""Memory of a served worker: freed argon2 buffers do not stay resident."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_worker_gives_argon2_memory_back_after_hashing(tmp_path: Path) -> None:
    """Without a fixed mmap threshold glibc keeps each thread's 19 MiB argon2 buffer in a
    heap after the first hash. In a fresh interpreter, as ``ostiary serve`` builds it."""
    script = (
        "import re, threading\n"
        "from ostiary.asgi import app_from_env\n"
        "from ostiary.identity.passwords import PasswordHasher\n"
        "def rss():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', status).group(1)) // 1024\n"
        "app_from_env()\n"
        "hasher = PasswordHasher()\n"
        "def work():\n"
        "    for _ in range(3):\n"
        "        hasher.verify(hasher.hash('correct horse battery'), 'correct horse battery')\n"
        "before = rss()\n"
        "work()\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start()\n"
        "worker.join()\n"
        "print(before, rss())\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")},
        "OSTIARY_DATA_DIR": str(tmp_path),
        "OSTIARY_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert after - before < 8, f"RSS grew from {before} to {after} MiB"


def test_a_served_app_does_not_load_the_forward_mode_client_until_a_forward_call() -> None:
    """aiohttp (~9 MiB per worker) is imported by the first forward-mode call, not at
    start: an idle worker stays under 120 MiB (README, Benchmarks)."""
    script = (
        "import sys\n"
        "from ostiary.app import create_app\n"
        "from ostiary.runtime import relay, endpoint\n"
        "print('aiohttp' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
