"""Helpers for dataset tests (a unique module name: `from conftest import` is ambiguous across folders)."""


def chat(user="How do I check free disk space?", answer="Run df -h and read the Avail column.", **extra):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}
