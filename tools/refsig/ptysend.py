#!/usr/bin/env python3
"""Plays a raw probe stream into a pseudo-terminal in real time, as a probe
interface would: prints the terminal's path, waits a second for a reader,
then writes the file's bytes at the pace of SECONDS of signal.

    ptysend.py STREAM SECONDS
"""
import os
import sys
import time
import tty


def main():
    path, seconds = sys.argv[1], float(sys.argv[2])
    with open(path, "rb") as f:
        data = f.read()
    rate = len(data) / seconds
    master, slave = os.openpty()
    tty.setraw(slave)
    print(os.ttyname(slave), flush=True)
    time.sleep(1.0)
    t0, sent = time.monotonic(), 0
    while sent < len(data):
        due = t0 + sent / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        sent += os.write(master, data[sent:sent + 4096])
    time.sleep(2.0)


if __name__ == "__main__":
    main()
