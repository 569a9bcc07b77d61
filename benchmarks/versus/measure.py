"""Running one tool in a child process and measuring it: wall time, CPU time, the peak
resident memory of its process tree, its output with time stamps; and the machine it ran on."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

from .settings import GB, POLL_S, REPO


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx2"))),
        "ram_gib": round(ram / 2**30, 1),
        "versions": versions(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": len((_git("status", "--porcelain") or "").splitlines()),
    }


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "optimum", "gptqmodel", "qwen2vl-quant", "safetensors", "tokenizers",
                 "accelerate", "torchvision", "pillow", "psutil", "qwen-vl-utils"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def other_busy_processes(own_pids: set[int]) -> list[str]:
    """Processes of other jobs using CPU right now (for the record: the machine is shared)."""
    import psutil

    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            if cpu >= 20 and p.pid not in own_pids:
                cmd = " ".join(" ".join(p.info["cmdline"] or [p.info["name"] or "?"]).split())
                busy.append(f"{cpu:.0f}% {cmd[:140]}")
        except psutil.Error:
            pass
    return busy


def _cmdline(pid: int) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())[:160]
    except psutil.Error:
        return "?"


class TreeMonitor(threading.Thread):
    """Polls the RSS of a process and all its descendants every POLL_S seconds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self.peak_anon = 0  # RSS minus file-backed shared pages (memory-mapped weights)
        self.peak_at = 0.0
        self.max_procs = 1
        self.peak_parts: list = []  # (pid, rss[, command]) of every process at the peak
        self.timeline: list[tuple[float, float]] = []
        self.loads: list[float] = []
        self.started = time.perf_counter()
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        last_mark = -1e9
        while not self.stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            rss = anon = 0
            parts = []
            for p in procs:
                try:
                    m = p.memory_info()
                    rss += m.rss
                    anon += m.rss - m.shared
                    parts.append((p.pid, m.rss))
                except psutil.Error:
                    pass
            now = time.perf_counter() - self.started
            if rss > self.peak:
                self.peak, self.peak_at = rss, now
                if len(parts) > 1 or len(self.peak_parts) > 1:
                    self.peak_parts = [(pid, r, _cmdline(pid)) for pid, r in parts]
                else:
                    self.peak_parts = parts
            self.peak_anon = max(self.peak_anon, anon)
            self.max_procs = max(self.max_procs, len(procs))
            if now - last_mark >= 2.0:
                self.timeline.append((round(now, 1), round(rss / GB, 3)))
                self.loads.append(os.getloadavg()[0])
                last_mark = now
            self.stop.wait(POLL_S)


class LogPump(threading.Thread):
    """Copies a child's stdout+stderr to a log file, each line (tqdm's \\r updates too)
    prefixed with the seconds since the child started, so stages can be timed afterwards."""

    def __init__(self, stream, log_path: Path, started: float, echo: bool) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.started, self.echo = stream, log_path, started, echo
        self.last_line = ""

    def run(self) -> None:
        # A line is stamped with the arrival of its first byte: tqdm starts each update with
        # "\r" and ends none, so the end of a segment is only seen at the next write.
        buf, buf_t = b"", 0.0
        with open(self.log_path, "w") as log:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                now = time.perf_counter() - self.started
                if not buf:
                    buf_t = now
                buf += chunk
                while True:
                    cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
                    if cut < 0:
                        break
                    line, buf = buf[:cut].decode(errors="replace"), buf[cut + 1:]
                    if line.strip():
                        log.write(f"[{buf_t:8.1f}s] {line}\n")
                        log.flush()
                        self.last_line = line.strip()
                        if self.echo:
                            print(f"    [{buf_t:7.1f}s] {line}", flush=True)
                    buf_t = now
                if buf.strip():  # an unfinished tqdm update: what the child shows right now
                    self.last_line = buf.decode(errors="replace").strip()
            if buf.strip():
                log.write(f"[{buf_t:8.1f}s] {buf.decode(errors='replace')}\n")


def run_measured(name: str, cmd: list[str], env: dict, log_path: Path, echo: bool, heartbeat_s: float = 60.0) -> dict:
    """Run cmd as a child, measure wall time, peak tree RSS, ru_maxrss, CPU time; return them."""
    load_before = load_average()
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    print(f"[{name}] log: {log_path}; load average before: {load_before}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    monitor = TreeMonitor(proc.pid)
    monitor.started = started
    monitor.start()
    pump = LogPump(proc.stdout, log_path, started, echo)
    pump.start()
    result: dict = {}

    def wait() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        result.update(status=status, usage=usage, wall=time.perf_counter() - started)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(heartbeat_s)
        if waiter.is_alive():
            print(f"[{name}] {time.perf_counter() - started:7.0f}s  RSS peak {monitor.peak / GB:.2f} GB  "
                  f"load {load_average()[0]:.2f}  | {pump.last_line[-110:]}", flush=True)
    monitor.stop.set()
    monitor.join()
    pump.join()
    proc.returncode = os.waitstatus_to_exitcode(result["status"])  # keep Popen from waiting again
    usage = result["usage"]
    out = {
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "wall_s": round(result["wall"], 1),
        "cpu_user_s": round(usage.ru_utime, 1),
        "cpu_sys_s": round(usage.ru_stime, 1),
        "peak_rss_gb": round(monitor.peak / GB, 3),
        "peak_rss_at_s": round(monitor.peak_at, 1),
        "peak_rss_minus_shared_gb": round(monitor.peak_anon / GB, 3),
        # Linux reports ru_maxrss in KiB.
        "ru_maxrss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
        "max_processes": monitor.max_procs,
        "processes_at_peak": [{"pid": p[0], "rss_gb": round(p[1] / GB, 3), **({"cmd": p[2]} if len(p) > 2 else {})}
                              for p in monitor.peak_parts],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "load_average_1min_mean_during": round(sum(monitor.loads) / max(1, len(monitor.loads)), 2),
        "rss_timeline_gb": monitor.timeline,
        "log": str(log_path),
    }
    print(f"[{name}] exit {out['returncode']}; wall {out['wall_s']} s; CPU {out['cpu_user_s'] + out['cpu_sys_s']:.0f} s; "
          f"peak RSS {out['peak_rss_gb']:.2f} GB (at {out['peak_rss_at_s']} s); ru_maxrss {out['ru_maxrss_gb']:.2f} GB; "
          f"load after {out['load_average_after']}", flush=True)
    return out


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env
