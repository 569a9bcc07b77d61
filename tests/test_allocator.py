"""glibc keeps freed large blocks after its mmap threshold has risen; pinning it fixes that."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, torch
    from qwen2vl_quant.allocator import return_freed_memory_to_os
    if sys.argv[1] == "pinned":
        assert return_freed_memory_to_os()
    def resident():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    big = torch.ones(7 * 2**20)  # 28 MB: freeing it raises glibc's dynamic mmap threshold
    del big
    before = resident()
    buffers = [torch.ones(5 * 2**20) for _ in range(10)]  # 10 x 20 MB, like per-layer buffers
    kept = [torch.ones(64 * 2**10)]  # a small block allocated after them, still alive
    del buffers
    print(resident() - before)
""")


def retained(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_buffers_leave_the_resident_set_once_thresholds_are_pinned():
    default = retained("default")
    if default < 150 * 2**20:
        pytest.skip(f"this libc returns freed blocks by itself (retained {default / 2**20:.0f} MB)")
    assert retained("pinned") < 30 * 2**20
