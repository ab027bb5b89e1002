"""Runs many gcloud lines in the real gcloud's own interpreter, each in a process forked after gcloud's modules
are imported: the same code gcloud.py runs for one line (`sys.exit(gcloud_main.main())`), without paying the
second of imports for every line.

gcloud's launcher starts it, so that the interpreter, its flags and its environment are the ones it picks for
any line: CLOUDSDK_PYTHON_ARGS="-S THIS_FILE" makes the launcher run `python [-S] THIS_FILE .../lib/gcloud.py
LINES VERDICTS` (it keeps -S where it would add it and drops it where it would drop it). LINES holds a JSON
list of argument lists; VERDICTS receives [exit status, stderr, stdout] for each. Each line gets its own empty
configuration and HOME, and no line sees what another did.
"""

import importlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile

TIMEOUT_S = 120


def load_gcloud(launcher):
    """gcloud.py's own start-up: its module puts gcloud's folders on sys.path; then the steps of its main()."""
    spec = importlib.util.spec_from_file_location("gcloud", launcher)
    gcloud = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gcloud)
    sys.path = gcloud.reorder_sys_path(sys.path)
    if "google" in sys.modules:  # as gcloud.py's _fix_google_module: prefer gcloud's vendored google package
        importlib.reload(sys.modules["google"])
    from googlecloudsdk import gcloud_main
    from googlecloudsdk.core.configurations import named_configs

    return gcloud_main, named_configs.ActivePropertiesFile


def run_line(gcloud_main, properties, launcher, line, folder):
    """In the forked child: gcloud with these arguments, its output in files; never returns."""
    # Importing gcloud made its empty configuration (an active_config and config_default) and read it: this
    # line starts from a copy of that, read afresh.
    shutil.copytree(os.environ["CLOUDSDK_CONFIG"], os.path.join(folder, "config"))
    os.environ["HOME"], os.environ["CLOUDSDK_CONFIG"] = folder, os.path.join(folder, "config")
    properties.Invalidate()
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    signal.alarm(TIMEOUT_S)
    sys.argv = [launcher, *line]
    try:
        status = gcloud_main.main()
    except SystemExit as exit:
        status = exit.code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status if isinstance(status, int) else 0 if status is None else 1)


def main():
    launcher, lines_path, verdicts_path = sys.argv[1:4]
    with open(lines_path) as lines_file:
        lines = json.load(lines_file)
    gcloud_main, properties = load_gcloud(launcher)
    folders = [tempfile.mkdtemp(prefix="line-") for _ in lines]
    statuses, running, waiting = {}, {}, list(range(len(lines)))
    while waiting or running:
        while waiting and len(running) < max(2, os.cpu_count() or 2):
            index = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                run_line(gcloud_main, properties, launcher, lines[index], folders[index])
            running[pid] = index
        pid, status = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(status)

    def output(index, name):
        with open(os.path.join(folders[index], name), errors="replace") as file:
            return file.read()

    verdicts = [[statuses[index], output(index, "stderr"), output(index, "stdout")] for index in range(len(lines))]
    with open(verdicts_path, "w") as verdicts_file:
        json.dump(verdicts, verdicts_file)


if __name__ == "__main__":
    main()
