"""Postfix's smtp-sink as the remote MX, dumping each message so the bench can check that
every accepted message arrived exactly once."""
import collections
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

BENCH_ID = re.compile(rb"^X-Bench-Id: (\S+)", re.MULTILINE)


class Sink:
    def __init__(self, port, dump_dir, backlog=256):
        self.port, self.dump_dir, self.backlog = port, Path(dump_dir), backlog
        self.process = None

    def start(self):
        if self.dump_dir.exists():
            shutil.rmtree(self.dump_dir)
        self.dump_dir.mkdir(parents=True)
        os.chmod(self.dump_dir, 0o777)
        self.process = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-d", str(self.dump_dir / "%M"), f"127.0.0.1:{self.port}", str(self.backlog)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(5)

    def arrived(self, run_id=None):
        """Counter of bench ids found in the dumped messages (optionally of one run)."""
        counts = collections.Counter()
        for path in self.dump_dir.iterdir():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for match in BENCH_ID.finditer(data[:8192]):
                bench_id = match.group(1).decode()
                if run_id is None or bench_id.startswith(run_id + "-"):
                    counts[bench_id] += 1
        return counts

    def wait_for(self, expected_ids, run_id, timeout):
        """Wait until every expected id has arrived; returns (counts, seconds waited)."""
        started = time.perf_counter()
        expected = set(expected_ids)
        while True:
            counts = self.arrived(run_id)
            if expected <= set(counts) or time.perf_counter() - started > timeout:
                return counts, time.perf_counter() - started
            time.sleep(0.5)
