"""The counting process through its client, for real (a child process, the bundled tokenizers):
counts are exact for the version they name and never go back, big texts never wait for the
process, and whatever happens to the process (killed, stopped, a panicking tokenizer, a death
while loading, the UI dying) is reported and recovered from, with no process left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

from counting_testing import Recorder, alive, wait_until
from tokdeck_testing import REPO
from tui.core.errors import TokenizerError
from tui.core.tokenizers.counting_client import (CountingService, ProcessProblem, ProcessStarted, ProcessStopped,
                                                 RowCounts, TokenizerLoaded, TokenWindow)

# one tokenizer of each kind: tiktoken (two cut rules), HF incremental, HF counted whole, the estimate
IDS = ["cl100k_base", "r50k_base", "qwen3", "llama2", "estimate"]


def _edit_module():
    sys.path.insert(0, str(REPO / "tests" / "tokenizers_incremental"))
    try:
        import test_incremental_exact as module
    finally:
        sys.path.pop(0)
    return module


def test_every_count_is_exact_for_the_version_it_names_and_never_goes_back(start_service, bundled):
    exact = _edit_module()
    service, rec, doc = start_service()
    rng = random.Random(11)
    doc.set_rows(IDS)
    text, specials, version = exact.random_text(rng, 300), "literal", 1
    texts = {version: (text, specials)}
    doc.reset(version, text, specials)
    wait_until(lambda: rec.counted(IDS, 1), "the first counts")
    for step in range(240):
        version += 1
        if step in (60, 180):  # a policy switch is a version of its own
            specials = "parse" if specials == "literal" else "literal"
            doc.set_specials(version, specials)
        elif step == 120:  # a new file
            text = exact.random_text(rng, 200)
            doc.reset(version, text)
        else:
            text, span = exact.edit(rng, text)
            if len(text) > 6000:
                text, span = text[-3000:], (0, 3000)
            doc.edit(version, text, span)
        texts[version] = (text, specials)
        if rng.random() < 0.2:
            time.sleep(0.01)  # now and then the process catches up; otherwise it gets bursts
    wait_until(lambda: rec.counted(IDS, version), "the last version's counts")
    rows = rec.rows()
    assert not [row for row in rows if row.count.error]
    reference: dict[tuple[str, int], int] = {}
    for row in rows:
        key = (row.tokenizer_id, row.version)
        if key not in reference:
            t, policy = texts[row.version]
            reference[key] = bundled.get(row.tokenizer_id).count(t, policy)
        assert row.count.tokens == reference[key], key
        assert row.count.chars == len(texts[row.version][0])
    versions = defaultdict(list)
    for row in rows:
        versions[row.tokenizer_id].append(row.version)
    assert all(v == sorted(v) for v in versions.values())  # delivered in version order, per row
    assert len({v for vs in versions.values() for v in vs}) > 40  # and really counted along the way
    assert not rec.of(ProcessStopped) and not rec.of(ProcessProblem)


def test_a_megabyte_edit_never_waits_for_the_process(start_service, bundled):
    service, rec, doc = start_service()
    doc.set_rows(["cl100k_base"])
    doc.reset(1, "start\n")
    wait_until(lambda: rec.counted(["cl100k_base"], 1), "the first count")
    pid = service.pid_of("cl100k_base")
    big = "".join(f"line {i}: some words, 東京 and 😀\n" for i in range(60_000))  # 2 M characters
    os.kill(pid, signal.SIGSTOP)  # the process reads nothing: a blocking send would wait for ever
    try:
        sender = threading.Thread(target=lambda: (doc.edit(2, "start\n" + big, (6, 0)),
                                                  doc.edit(3, "start\n" + big + "end", (6 + len(big), 0))))
        sender.start()
        sender.join(10)
        assert not sender.is_alive(), "sending waited for the stopped process"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: rec.counted(["cl100k_base"], 3), "the count of the big text")
    assert rec.latest["cl100k_base"].count.tokens == bundled.get("cl100k_base").count("start\n" + big + "end")
    assert service.pid_of("cl100k_base") == pid


@pytest.mark.parametrize("processes", [1, 2])
def test_a_crashed_process_is_restarted_and_sent_the_document_again(start_service, bundled, processes):
    service, rec, doc = start_service(processes=processes)
    ids = ["cl100k_base", "llama2"]
    doc.set_rows(ids)
    doc.reset(1, "hello world\n")
    wait_until(lambda: rec.counted(ids, 1), "the first counts")
    first, other = service.pid_of("cl100k_base"), service.pid_of("llama2")
    assert (first == other) == (processes == 1) and len(service.pids) == processes
    os.kill(first, signal.SIGSEGV)  # as a crash in a library would: faulthandler writes to its stderr
    wait_until(lambda: rec.of(ProcessStopped), "the news of its death")
    stopped = rec.of(ProcessStopped)[0]
    assert stopped.restarting
    assert stopped.reason == "the counting process was killed by SIGSEGV: Fatal Python error: Segmentation fault"
    # the rows of the process that died, and only those: the other process counts on
    restarted = set(ids) if processes == 1 else {"cl100k_base"}
    assert set(stopped.tokenizer_ids) == restarted
    after = len(rec.events)
    # the new process was sent the rows and the text: it counts version 1 again with no new edit
    wait_until(lambda: {r.tokenizer_id for e in rec.events[after:] if isinstance(e, RowCounts) for r in e.rows
                        if r.version == 1} == restarted, "the counts from the new process")
    assert service.pid_of("cl100k_base") != first and not alive(first)
    if processes == 2:
        assert service.pid_of("llama2") == other and len(rec.of(ProcessStopped)) == 1
    assert sorted(e.pid for e in rec.of(ProcessStarted)) == sorted(service.started_pids)
    assert len(service.started_pids) == processes + 1
    doc.edit(2, "hello world\nagain", (12, 0))
    wait_until(lambda: rec.counted(ids, 2), "counts after the restart")
    for tid in ids:
        assert rec.latest[tid].count.tokens == bundled.get(tid).count("hello world\nagain")


def test_a_corrupt_tokenizer_fails_its_row_and_nothing_reaches_the_terminal(start_service, tmp_path, monkeypatch,
                                                                             capfd):
    from tui.core.tokenizers import Registry

    folder = tmp_path / "toks"
    folder.mkdir()
    # two tokens of the same rank: tiktoken's Rust core would panic building the encoding; the loader refuses it first
    (folder / "dup.tiktoken").write_text("YQ== 0\nYg== 0\nYw== 1\n")
    monkeypatch.setenv("TOKDECK_TOKENIZER_PATH", str(folder))
    service, rec, doc = start_service(Registry())
    doc.set_rows(["dup", "cl100k_base"])
    doc.reset(1, "some text")
    wait_until(lambda: rec.counted(["cl100k_base"], 1) and any(e.tokenizer_id == "dup" for e in
                                                               rec.of(TokenizerLoaded)), "the rows")
    (dup,) = [e for e in rec.of(TokenizerLoaded) if e.tokenizer_id == "dup"]
    assert dup.error and "corrupt tiktoken vocabulary" in dup.error and "rank 0" in dup.error
    assert "\n" not in dup.error  # one line
    assert rec.latest["cl100k_base"].count.tokens == 2
    assert not rec.of(ProcessStopped) and len(service.started_pids) == 2  # one process each
    assert service.pid_of("dup") != service.pid_of("cl100k_base")
    with pytest.raises(TokenizerError, match="corrupt tiktoken vocabulary"):
        service.remote_registry().get("dup")
    out, err = capfd.readouterr()
    assert "panicked" not in out + err and err == ""


def test_a_process_dying_while_loading_a_tokenizer_twice_gets_it_blamed(start_service, bundled):
    service, rec, doc = start_service(processes=1)
    ids = ["cl100k_base", "qwen3"]  # tiktoken files load first: qwen3 last
    doc.set_rows(ids)
    doc.reset(1, "text to count\n")
    shard = service._owners["qwen3"]
    for attempt in range(2):
        wait_until(lambda: shard.child is not None and shard.child.loading == "qwen3", "qwen3 loading")
        os.kill(service.pid_of("qwen3"), signal.SIGKILL)
        wait_until(lambda: len(rec.of(ProcessStopped)) == attempt + 1, "the death")
    wait_until(lambda: rec.counted(["cl100k_base"], 1) and any(e.error for e in rec.of(TokenizerLoaded)
                                                              if e.tokenizer_id == "qwen3"), "the blame")
    wait_until(lambda: len(rec.of(ProcessStarted)) == 3, "the third process")
    (blame,) = [e for e in rec.of(TokenizerLoaded) if e.tokenizer_id == "qwen3" and e.error]
    assert "SIGKILL while loading it, 2 times" in blame.error
    assert len(service.started_pids) == 3 and all(e.restarting for e in rec.of(ProcessStopped))
    with pytest.raises(TokenizerError, match="while loading it"):
        service.load("qwen3")  # never loaded again


def test_a_process_that_keeps_dying_is_given_up_until_started_again(start_service):
    service, rec, doc = start_service()
    doc.set_rows(["estimate"])
    doc.reset(1, "abc")
    for deaths in range(1, 5):
        wait_until(lambda: service.pid_of("estimate") is not None and rec.counted(["estimate"], 1),
                   "a process counting")
        os.kill(service.pid_of("estimate"), signal.SIGKILL)
        wait_until(lambda: len(rec.of(ProcessStopped)) == deaths, "the death")
        rec.latest.clear()
    last = rec.of(ProcessStopped)[-1]
    assert not last.restarting and service.stopped == last.reason and service.pid_of("estimate") is None
    with pytest.raises(TokenizerError, match="SIGKILL"):
        service.call("estimate", "count_many", ["abc"], "literal")
    service.start()
    wait_until(lambda: rec.counted(["estimate"], 1), "the count after starting again")


def test_remote_tokenizers_give_what_local_ones_give(start_service, bundled):
    service, _, _ = start_service()
    reg = service.remote_registry()
    text = "Hello, world! 東京 😀 <|endoftext|>"
    for tid in ("cl100k_base", "qwen3"):
        remote, local = reg.get(tid), bundled.get(tid)
        assert remote.count(text) == local.count(text)
        assert remote.count_many([text, "x"], "parse") == local.count_many([text, "x"], "parse")
        ids = remote.encode(text)
        assert ids == local.encode(text)
        assert remote.token_bytes(ids) == local.token_bytes(ids)
        assert remote.decode(ids) == local.decode(ids)
        assert remote.special_ids() == local.special_ids()
        assert remote.vocab_size == local.vocab_size and remote.cut_rule == local.cut_rule
    assert service.pid_of("cl100k_base") != service.pid_of("qwen3")  # each call went to its tokenizer's process
    with pytest.raises(NotImplementedError):
        reg.get("estimate").encode("abc")
    with pytest.raises(TokenizerError, match="unknown tokenizer"):
        reg.get("no-such-tokenizer")


def test_the_token_window_comes_from_the_process(start_service, bundled):
    from tui.core.tokenizers.incremental import window_bounds
    from tui.core.tokenizers.pieces import token_pieces

    service, rec, doc = start_service()
    doc.set_rows(["o200k_base", "estimate"])
    text = "".join(f"line {i} with words\n" for i in range(3000))
    doc.reset(1, text)
    wait_until(lambda: rec.counted(["o200k_base", "estimate"], 1), "the counts")
    request = doc.request_window(1, "o200k_base", 30_000, 5_000, 300)
    wait_until(lambda: rec.of(TokenWindow), "the window")
    (window,) = rec.of(TokenWindow)
    tok = bundled.get("o200k_base")
    start, end = window_bounds(text, tok.cut_rule, 30_000, 5_000)
    assert (window.request, window.start, window.end, window.length) == (request, start, end, len(text))
    assert window.pieces == token_pieces(tok, text[start:end], "literal", 300)
    doc.request_window(1, "estimate", 0, 5_000, 300)
    wait_until(lambda: len(rec.of(TokenWindow)) == 2, "the second window")
    assert "no tokens to show" in rec.of(TokenWindow)[1].error


def test_a_bad_message_is_reported_and_the_process_goes_on(start_service):
    service, rec, doc = start_service()
    doc.set_rows(["estimate"])
    doc.reset(1, "abc")
    with service._lock:
        shard = service._owner("estimate")
        service._send(shard, ("edit", doc.id, 2))  # a message of the wrong shape
        service._send(shard, ("frobnicate",))
    wait_until(lambda: len(rec.of(ProcessProblem)) == 2, "the problems")
    assert "frobnicate" in rec.of(ProcessProblem)[1].message
    doc.edit(2, "abcd", (3, 0))
    wait_until(lambda: rec.counted(["estimate"], 2), "a count after the problems")
    assert len(service.started_pids) == 1


def test_no_counting_process_outlives_its_ui(tmp_path):
    """Closing the service reaps the process; a UI killed outright leaves one that exits by itself."""
    from tui.core.tokenizers import Registry

    service = CountingService(Registry(discover=False, env={}))
    try:
        doc = service.open_document(Recorder())
        doc.set_rows(["cl100k_base", "gemma3"])
        pids = service.pids
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
    finally:
        service.close()
    assert not [pid for pid in pids if alive(pid)]

    script = ("import os, signal, time\n"
              "from tui.core.tokenizers import Registry\n"
              "from tui.core.tokenizers.counting_client import CountingService\n"
              "service = CountingService(Registry(discover=False, env={}))\n"
              "doc = service.open_document(lambda event: None)\n"
              "doc.set_rows(['cl100k_base', 'gemma3'])\n"
              "doc.reset(1, 'hello')\n"
              "time.sleep(0.3)\n"
              "print(*service.pids, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    orphans = [int(pid) for pid in out.stdout.split()]
    assert len(orphans) == 2
    wait_until(lambda: not [pid for pid in orphans if alive(pid)], "the orphaned processes to exit", timeout=30)


def test_a_process_that_cannot_start_is_said_once_and_calls_fail(start_service, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    service, rec, doc = start_service()
    doc.set_rows(["estimate"])
    (stopped,) = rec.of(ProcessStopped)
    assert not stopped.restarting and "cannot start the counting process" in stopped.reason
    assert stopped.tokenizer_ids == ("estimate",)
    doc.edit(1, "abc", None)
    with pytest.raises(TokenizerError, match="cannot start"):
        service.remote_registry().get("estimate")
    assert service.started_pids == []


def test_an_edit_can_wait_for_its_first_counts(start_service, bundled):
    service, rec, doc = start_service()
    doc.set_rows(["cl100k_base", "qwen3", "llama2"])
    doc.reset(1, "hello world\n")
    wait_until(lambda: rec.counted(["cl100k_base", "qwen3", "llama2"], 1), "the first counts")
    doc.edit(2, "hello world\nmore", (12, 0))
    rows = doc.wait_for_counts(2, 30.0)  # each process's first frame (the tiktoken family's in its own)
    assert rows and "cl100k_base" in {r.tokenizer_id for r in rows}  # the two processes answer in any order
    assert all(r.version == 2 and r.count.tokens == bundled.get(r.tokenizer_id).count("hello world\nmore")
               for r in rows)
    assert doc.wait_for_counts(3, 0.01) == []  # a version not sent: the wait ends with nothing


def test_an_edit_can_wait_for_the_tiktoken_family_alone(start_service, bundled):
    """The pane waits for the tiktoken family's frame only; the other incremental rows follow."""
    from tui.core.tokenizers.counting_process import INLINE_DONE, TIKTOKEN_DONE

    service, rec, doc = start_service()
    doc.set_rows(["cl100k_base", "qwen3"])
    doc.reset(1, "hello world\n")
    wait_until(lambda: rec.counted(["cl100k_base", "qwen3"], 1), "the first counts")
    doc.edit(2, "hello world\nmore", (12, 0))
    first = doc.wait_for_counts(2, 30.0, TIKTOKEN_DONE)
    assert "cl100k_base" in {r.tokenizer_id for r in first}
    doc.edit(3, "hello world\nmore text", (16, 0))
    first = {r.tokenizer_id for r in doc.wait_for_counts(3, 30.0, TIKTOKEN_DONE)}
    every = {r.tokenizer_id: r for r in doc.wait_for_counts(3, 30.0, INLINE_DONE)}
    assert "cl100k_base" in first and set(every) == {"cl100k_base", "qwen3"}
    assert all(r.version == 3 and r.count.tokens == bundled.get(tid).count("hello world\nmore text")
               for tid, r in every.items())


def test_the_client_tells_the_stages_of_an_edits_counts_apart(start_service):
    """Frames fed by hand, for a version no process counts: a wait for the tiktoken family
    returns on its frame alone while a wait for every incremental row still waits; the frames
    an edit's arrival computed are marked inline (the pane draws them at once), a lane's are not."""
    from tui.core.tokenizers.counting_client import RowCounts
    from tui.core.tokenizers.counting_process import INLINE_DONE, LANE, TIKTOKEN_DONE

    service, rec, doc = start_service()
    doc.set_rows(["cl100k_base", "qwen3"])
    doc.reset(1, "hello\n")
    wait_until(lambda: rec.counted(["cl100k_base", "qwen3"], 1), "the first counts")
    shards = [shard for shard in service._shards if shard.child is not None]
    assert shards

    def row(tid: str, n: int) -> tuple:
        return tid, 6, n, None, True, None, 0.001

    version = 1000
    for shard in shards[:-1]:
        doc._counts(shard, version, [row("cl100k_base", 7)], TIKTOKEN_DONE)
    started = time.monotonic()
    doc.wait_for_counts(version, 0.15, TIKTOKEN_DONE)
    assert len(shards) == 1 or time.monotonic() - started >= 0.15  # one process has not answered yet
    doc._counts(shards[-1], version, [row("cl100k_base", 7)], TIKTOKEN_DONE)
    started = time.monotonic()
    first = doc.wait_for_counts(version, 5.0, TIKTOKEN_DONE)
    assert time.monotonic() - started < 1.0 and {r.tokenizer_id for r in first} == {"cl100k_base"}
    started = time.monotonic()
    assert {r.tokenizer_id for r in doc.wait_for_counts(version, 0.15, INLINE_DONE)} == {"cl100k_base"}
    assert time.monotonic() - started >= 0.15  # the other incremental rows are not done yet
    doc._counts(shards[0], version, [row("qwen3", 5)], LANE)  # a lane's frame does not finish a stage
    started = time.monotonic()
    doc.wait_for_counts(version, 0.15, INLINE_DONE)
    assert time.monotonic() - started >= 0.15
    for shard in shards:
        doc._counts(shard, version, [], INLINE_DONE)
    started = time.monotonic()
    every = doc.wait_for_counts(version, 5.0, INLINE_DONE)
    assert time.monotonic() - started < 1.0 and {r.tokenizer_id for r in every} == {"cl100k_base", "qwen3"}
    delivered = [e for e in rec.of(RowCounts) if any(r.version == version for r in e.rows)]
    assert [e.inline for e in delivered] == [True] * len(shards) + [False]


def test_a_hung_process_is_found_by_a_ping_killed_and_restarted(start_service, bundled, monkeypatch):
    from tui.core.tokenizers import counting_client

    monkeypatch.setattr(counting_client, "OVERDUE_S", 0.2)
    monkeypatch.setattr(counting_client, "PING_DEADLINE_S", 0.6)
    monkeypatch.setattr(counting_client, "WATCH_INTERVAL_S", 0.05)
    service, rec, doc = start_service()
    ids = ["r50k_base", "estimate"]
    doc.set_rows(ids)
    doc.reset(1, "hello world\n")
    wait_until(lambda: rec.counted(ids, 1), "the first counts")
    doc.close()  # a request with no answer of its own: the process is pinged, answers, and lives
    doc = service.open_document(rec)
    doc.set_rows(ids)
    doc.reset(2, "hello world\n")
    wait_until(lambda: rec.counted(ids, 2), "the counts of a new document")
    time.sleep(1.5)
    assert not rec.of(ProcessStopped)
    first, other = service.pid_of("r50k_base"), service.pid_of("estimate")
    assert first != other
    os.kill(first, signal.SIGSTOP)  # alive, but it will never answer
    doc.edit(3, "hello world\nagain", (12, 0))
    wait_until(lambda: rec.of(ProcessStopped), "the hung process to be found", timeout=20)
    stopped = rec.of(ProcessStopped)[0]
    assert stopped.restarting and stopped.reason.startswith("the counting process stopped answering")
    assert stopped.tokenizer_ids == ("r50k_base",)  # the other process answers: it lives on
    wait_until(lambda: rec.counted(ids, 3), "the counts from the new process")
    assert service.pid_of("r50k_base") != first and not alive(first)
    assert service.pid_of("estimate") == other and len(rec.of(ProcessStopped)) == 1
    for tid in ids:
        assert rec.latest[tid].count.tokens == bundled.get(tid).count("hello world\nagain")


def _thread_nices(pid: int) -> dict[int, int]:
    """Each thread's nice value (/proc/PID/task/TID/stat, field 19)."""
    nices = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as fh:
            nices[int(tid)] = int(fh.read().rsplit(")", 1)[1].split()[16])
    return nices


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
@pytest.mark.parametrize("background_nice", [10, 3, 0])
def test_the_bulk_work_runs_below_the_ui_and_in_its_session(start_service, bundled, background_nice):
    """Loading and lane counting run background_nice below the main thread, which counts a
    keystroke inline at the UI's priority; the process has its own process group (the
    terminal's signals are the UI's) in the UI's session (so in its scheduling group), or with
    nice 0 a session of its own."""
    service, rec, doc = start_service(processes=1, background_nice=background_nice)
    doc.set_rows(["qwen3", "cl100k_base"])
    doc.reset(1, "")  # an empty document, as the pane opens: the first text comes in an edit ...
    wait_until(lambda: rec.counted(["qwen3", "cl100k_base"], 1), "the counts")
    doc.edit(2, "hello world", (0, 0))  # ... counted inline, by the main thread (Rust's threads start then)
    wait_until(lambda: rec.counted(["qwen3", "cl100k_base"], 2), "the edit's counts")
    doc.edit(3, "hello world\n" * 20_000, (0, 0))  # a big edit: counted in a lane
    wait_until(lambda: rec.counted(["qwen3", "cl100k_base"], 3), "the big edit's counts")
    (pid,) = service.pids
    assert os.getpgid(pid) == pid and os.getsid(pid) == (os.getsid(0) if background_nice else pid)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    nices = _thread_nices(pid)
    assert nices.pop(pid) == base  # the main thread
    assert nices and set(nices.values()) == {min(19, base + background_nice)}, nices


def test_the_tokenizers_are_split_to_balance_loading_and_a_shared_file_stays_in_one_process(bundled):
    from tui.core.tokenizers import bundled_ids

    ids = bundled_ids() + ["estimate"]
    size = {tid: os.path.getsize(bundled.info(tid).path) if bundled.info(tid).path else 0 for tid in ids}
    service = CountingService(bundled)  # no process starts: nothing is counted
    try:
        with service._lock:
            service._assign(ids)
        first, second = (list(shard.tids) for shard in service._shards)
        assert service.pids == () and sorted(first + second) == sorted(ids)
        assert "gemma3" in first and "llama3" in second  # the two largest files apart
        assert ("o200k_base" in first) == ("o200k_harmony" in first)  # one rank file, loaded once
        # bytes to load (each file once) within 5 % of each other
        loads = [sum({bundled.info(t).path: size[t] for t in tids}.values()) for tids in (first, second)]
        assert abs(loads[0] - loads[1]) / sum(loads) < 0.05
    finally:
        service.close()
    one = CountingService(bundled, processes=1)
    with one._lock:
        one._assign(ids)
    assert list(one._shards[0].tids) == sorted(ids, key=lambda t: -size[t])
    one.close()
    with pytest.raises(ValueError, match="at least one"):
        CountingService(bundled, processes=0)
    with pytest.raises(ValueError, match="0 to 19"):
        CountingService(bundled, background_nice=20)
