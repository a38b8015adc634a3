"""No task of the bench engine is left unwatched: its exception cannot vanish.

A task whose exception nobody retrieves loses it: asyncio prints "Task exception was never
retrieved" when the task is collected, and whatever it was doing (a request's accounting) is
gone. Every ``create_task``/``ensure_future`` in tui/core/bench/ must be awaited, gathered, or
given a done-callback that calls ``.result()`` or ``.exception()``.
"""

from __future__ import annotations

import ast

from tokdeck_testing import REPO

SPAWNERS = ("create_task", "ensure_future")
RETRIEVERS = ("result", "exception")


def _name(node: ast.AST) -> str | None:
    return ast.unparse(node) if isinstance(node, (ast.Name, ast.Attribute)) else None


def _retrieving_functions(tree: ast.Module) -> set[str]:
    """Names of the functions and methods of a module whose body calls ``.result()``/``.exception()``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _calls_retriever(node):
            found.add(node.name)
    return found


def _calls_retriever(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in RETRIEVERS
               for n in ast.walk(node))


def _is_gather(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "gather") or (isinstance(f, ast.Name) and f.id == "gather")


def _retrieved(name: str, scope: ast.AST, retrieving: set[str]) -> bool:
    """Whether ``name`` (a task, or a list of tasks) is awaited, gathered or given a retrieving
    done-callback somewhere in ``scope``."""
    for node in ast.walk(scope):
        if isinstance(node, ast.Await) and _name(node.value) == name:
            return True
        if not isinstance(node, ast.Call):
            continue
        if _is_gather(node):
            args = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
            if any(_name(a) == name for a in args):
                return True
        f = node.func
        if isinstance(f, ast.Attribute) and _name(f.value) == name:
            if f.attr in RETRIEVERS:
                return True
            if f.attr == "add_done_callback" and node.args:
                cb = node.args[0]
                if isinstance(cb, ast.Lambda) and _calls_retriever(cb.body):
                    return True
                if isinstance(cb, (ast.Name, ast.Attribute)) and ast.unparse(cb).split(".")[-1] in retrieving:
                    return True
    return False


def unretrieved_tasks(source: str, filename: str = "<source>") -> list[str]:
    """``file:line`` of every task spawned in ``source`` whose result nobody retrieves."""
    tree = ast.parse(source)
    retrieving = _retrieving_functions(tree)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    offenders = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and (_name(node.func) or "").split(".")[-1] in SPAWNERS):
            continue
        scope, holder, child = node, None, node
        while scope in parents:  # up to the statement that holds the task, and the function around it
            parent = parents[scope]
            if holder is None:
                if isinstance(parent, ast.Await) or (isinstance(parent, ast.Call) and _is_gather(parent)
                                                     and child in parent.args):
                    holder = "direct"
                elif isinstance(parent, (ast.Assign, ast.AnnAssign)):
                    targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
                    holder = _name(targets[0]) if len(targets) == 1 else None
                    holder = holder or "unknown"
                elif isinstance(parent, ast.Starred) and isinstance(parents.get(parent), ast.Call) \
                        and _is_gather(parents[parent]):
                    holder = "direct"
                elif isinstance(parent, ast.stmt):
                    holder = "unknown"  # a bare expression, a return, an argument of something else
            child = scope = parent
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
        if holder == "direct":
            continue
        # a task assigned to an attribute may be retrieved anywhere in the module; a local name, in its function
        where = tree if holder and "." in holder else scope
        if holder in (None, "unknown") or not _retrieved(holder, where, retrieving):
            offenders.append(f"{filename}:{node.lineno}")
    return offenders


def test_every_task_of_the_bench_engine_is_retrieved():
    offenders = []
    for path in sorted((REPO / "tui" / "core" / "bench").rglob("*.py")):
        offenders += unretrieved_tasks(path.read_text("utf-8"), str(path.relative_to(REPO)))
    assert offenders == []


GOOD = '''
import asyncio

async def awaited():
    await asyncio.create_task(work())
    t = asyncio.create_task(work())
    await t

async def gathered():
    tasks = [asyncio.create_task(work()) for _ in range(3)]
    helpers = [asyncio.create_task(work()), asyncio.ensure_future(work())]
    single = asyncio.create_task(work())
    single.cancel()
    await asyncio.gather(*tasks, single, return_exceptions=True)
    await asyncio.gather(*helpers)
    await asyncio.gather(asyncio.create_task(work()))

class Run:
    def reap(self, task):
        if not task.cancelled():
            task.exception()

    async def spawn(self):
        task = asyncio.create_task(work())
        task.add_done_callback(self.reap)
        other = asyncio.create_task(work())
        other.add_done_callback(lambda t: t.cancelled() or t.exception())
        last = asyncio.create_task(work())
        await asyncio.wait({last})
        last.result()
'''

BAD = '''
import asyncio

async def fire_and_forget():
    asyncio.create_task(work())

async def cancelled_only():
    t = asyncio.create_task(work())
    t.cancel()

async def waited_not_retrieved():
    t = asyncio.ensure_future(work())
    await asyncio.wait({t})

async def callback_that_does_not_retrieve(run):
    t = asyncio.get_running_loop().create_task(work())
    t.add_done_callback(lambda _t: run.stop())

async def stored_away(registry):
    registry.append(asyncio.create_task(work()))
'''


def test_the_check_tells_retrieved_tasks_from_lost_ones():
    assert unretrieved_tasks(GOOD) == []
    assert unretrieved_tasks(BAD) == [f"<source>:{n}" for n in (5, 8, 12, 16, 20)]
