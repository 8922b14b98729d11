"""An Ollama `Modelfile` beside an exported GGUF, so `ollama create my-model -f Modelfile` just works.

Ollama does not run the Jinja chat template a GGUF carries; it wants a Go template. We recognise the
common families from the tokenizer's chat template (ChatML as in SmolLM2 and Qwen, Llama 3, Mistral
[INST], Gemma turns) and write the matching Go template and stop words; anything else gets a plain
`{{ .Prompt }}` template and a comment saying so. Sampling settings become PARAMETER lines (the
playground's names, like `max_new_tokens`, are translated to Ollama's) and a system prompt becomes
SYSTEM. Writing the GGUF itself is `studio.export.gguf`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError


@dataclass(frozen=True)
class ChatFamily:
    """One chat format: how to recognise its Jinja template and how Ollama writes it."""

    name: str
    marker: str               # a string only this family's Jinja template contains
    template: str             # Ollama Go template
    stops: tuple[str, ...]


FAMILIES = (
    ChatFamily("chatml", "<|im_start|>", (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"), ("<|im_end|>",)),
    ChatFamily("llama3", "<|start_header_id|>", (
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>\n{{- end }}\n"
        "{{- range .Messages }}\n{{- if ne .Role \"system\" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>\n{{- end }}\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("<|eot_id|>", "<|start_header_id|>")),
    ChatFamily("mistral", "[INST]", (
        "{{- range $i, $_ := .Messages }}\n{{- if eq .Role \"user\" }}[INST] "
        "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}{{ .Content }}[/INST]\n"
        "{{- else if eq .Role \"assistant\" }} {{ .Content }}</s>\n{{- end }}\n{{- end }}"),
        ("[INST]", "[/INST]")),
    ChatFamily("gemma", "<start_of_turn>", (
        "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        "{{- if or (eq .Role \"user\") (eq .Role \"system\") }}<start_of_turn>user\n{{ .Content }}<end_of_turn>\n"
        "{{ if $last }}<start_of_turn>model\n{{ end }}\n"
        "{{- else if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}"
        "{{ if not $last }}<end_of_turn>\n{{ end }}\n{{- end }}\n{{- end }}"), ("<end_of_turn>",)),
)
PLAIN = ChatFamily("plain", "", "{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}", ())

# Ollama's PARAMETER names, and the playground's names for the same settings.
OLLAMA_PARAMETERS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repeat_last_n",
                     "num_ctx", "num_predict", "seed", "stop")
ALIASES = {"max_new_tokens": "num_predict", "repetition_penalty": "repeat_penalty", "context_length": "num_ctx"}


def chat_family(tokenizer) -> ChatFamily:
    """The chat format of `tokenizer.chat_template`, or PLAIN when none is recognised."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):  # a list of named templates: the default one matters
        template = next((t.get("template", "") for t in template if t.get("name") == "default"), "")
    return next((f for f in FAMILIES if f.marker in template), PLAIN)


def _quoted(text: str, field: str) -> str:
    if '"""' in text:
        raise StudioError(f"The {field} contains three double quotes in a row, which an Ollama Modelfile "
                          "cannot hold; remove them.", field=field, key="export.modelfile.quotes", name=field)
    return f'"""{text}"""'


def _parameter_lines(params: dict[str, Any]) -> list[str]:
    lines = []
    for name, value in params.items():
        if value is None:
            continue
        ollama = ALIASES.get(name, name)
        if ollama not in OLLAMA_PARAMETERS:
            choices = ", ".join(OLLAMA_PARAMETERS)
            raise StudioError(f"'{name}' is not an Ollama parameter; use one of {choices}.", field="params",
                              key="export.modelfile.parameter", name=name, choices=choices)
        lines.append(f"PARAMETER {ollama} {value}")
    return lines


def modelfile_text(gguf_name: str, tokenizer, system: str | None = None, params: dict | None = None) -> str:
    """The Modelfile's text for a GGUF file named `gguf_name` in the same folder."""
    family = chat_family(tokenizer)
    lines = ["# Ollama Modelfile written by Fine-tuning Studio: ollama create <name> -f Modelfile",
             f"FROM ./{gguf_name}"]
    if family is PLAIN:
        lines.append("# The chat template was not recognised (not ChatML, Llama 3, Mistral or Gemma): "
                     "prompts are sent as plain text; edit TEMPLATE to match the model's format.")
    lines.append(f"TEMPLATE {_quoted(family.template, 'template')}")
    if system:
        lines.append(f"SYSTEM {_quoted(system, 'system')}")
    params = dict(params or {})
    extra = params.pop("stop", None) or []
    eos = getattr(tokenizer, "eos_token", None)
    stops = [*family.stops, *([eos] if eos else []), *([extra] if isinstance(extra, str) else extra)]
    lines += [f'PARAMETER stop "{stop}"' for stop in dict.fromkeys(stops)]
    lines += _parameter_lines(params)
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, tokenizer, out_dir: Path, system: str | None = None,
                    params: dict | None = None) -> Path:
    """Write `out_dir/Modelfile` for the GGUF at `gguf_path` (referenced by its file name) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "Modelfile"
    path.write_text(modelfile_text(Path(gguf_path).name, tokenizer, system, params), encoding="utf-8")
    return path
