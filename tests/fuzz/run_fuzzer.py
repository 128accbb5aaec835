#!/usr/bin/env python3
"""Runs one libFuzzer target for a bounded time, as a Meson test.

    run_fuzzer.py FUZZER SEED_CORPUS WORK_DIR

Reads the committed seeds and the inputs found by earlier runs (WORK_DIR,
outside the source tree, where new ones and crash artifacts go), fuzzes for
AIO_FUZZ_SECONDS (default 20) and prints the executions and their rate.
Exits non-zero when the target crashed, leaked, timed out or broke an
invariant; the reproducer is in WORK_DIR (crash-*, leak-*, timeout-*).
"""
import os
import re
import subprocess
import sys


def main():
    fuzzer, seeds, work = sys.argv[1:4]
    seconds = int(os.environ.get("AIO_FUZZ_SECONDS", "20"))
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus, exist_ok=True)
    command = [fuzzer, f"-max_total_time={seconds}", "-print_final_stats=1", "-max_len=4096", "-timeout=10",
               "-rss_limit_mb=2048", f"-artifact_prefix={work}/", corpus, seeds]
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    stats = dict(re.findall(r"^stat::(\w+):\s*(\d+)", proc.stdout, re.M))
    name = os.path.basename(fuzzer)
    if proc.returncode != 0:
        print(proc.stdout[-20000:])
        print(f"{name}: FAILED (exit {proc.returncode}); reproducer in {work}")
        return 1
    print(f"{name}: {stats.get('number_of_executed_units', '?')} executions in {seconds} s, "
          f"{stats.get('average_exec_per_sec', '?')} exec/s, corpus {len(os.listdir(corpus))} new inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
