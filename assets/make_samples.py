"""Write the presets' sample datasets from the data this project wrote by hand (deterministic; run from anywhere).

    python assets/make_samples.py

- `sample-extract-json.jsonl`: order messages (English and Spanish, eight phrasings) and the JSON that extracts
  customer, city, date and total from each; names, cities and amounts are drawn with a fixed seed.
- `sample-summaries.jsonl`: the study cards' three points as a paragraph (source) and the card's one-line
  summary (target), from `sample-format-tutor.jsonl`.
- `sample-preferences.jsonl`: each tutor question with the study card as the chosen answer and the same facts as
  one unformatted paragraph as the rejected one, to teach the format from preferences (DPO).
- `sample-documents.txt`: the RAG sample documents (`rag/corpus.json`) as plain text, one paragraph per block.

`tests/unit/test_presets.py` checks that the committed files are what this script writes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 17
FIRST = ["Marta", "Luis", "Ana", "John", "Priya", "Tom", "Lucía", "Omar", "Sara", "Pedro", "Emma", "Chen"]
LAST = ["Ruiz", "García", "Smith", "Natarajan", "Whitcombe", "Moreno", "Okafor", "Silva", "Brown", "Li"]
CITIES = ["Valencia", "Leeds", "Lisbon", "Rotterdam", "Sevilla", "Bogotá", "Manchester", "Lima", "Porto", "Quito"]
ITEMS_EN = ["lamps", "chairs", "notebooks", "coffee filters", "garden gloves", "desk fans", "kettles", "mugs"]
ITEMS_ES = ["lámparas", "sillas", "cuadernos", "filtros de café", "guantes de jardín", "ventiladores", "teteras"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre"]
EN = ["Hi, this is {name} from {city}. On {day} {month} {year} I ordered {n} {item} for {total} EUR in total.",
      "Order placed by {name} ({city}) on {month} {day}, {year}: {n} {item}, total {total} EUR.",
      "{name} here. I live in {city} and bought {n} {item} on {day} {month} {year}; I paid {total} EUR.",
      "Please check my order from {day} {month} {year}: {n} {item}, {total} EUR. {name}, {city}."]
ES = ["Hola, soy {name}, de {city}. El {day} de {month} de {year} pedí {n} {item} por {total} EUR en total.",
      "Pedido de {name} ({city}) del {day} de {month} de {year}: {n} {item}, total {total} EUR.",
      "Soy {name} y vivo en {city}. Compré {n} {item} el {day} de {month} de {year} y pagué {total} EUR.",
      "Revisad mi pedido del {day} de {month} de {year}: {n} {item}, {total} EUR. {name}, {city}."]
ASK = {"en": "Extract the customer, city, date (YYYY-MM-DD) and total (a number) from this order as JSON.",
       "es": "Extrae el cliente, la ciudad, la fecha (AAAA-MM-DD) y el total (un número) de este pedido como JSON."}


def extraction_rows(count: int = 120) -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for i in range(count):
        lang = "en" if i % 2 == 0 else "es"
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        city, year, month, day = rng.choice(CITIES), rng.choice([2024, 2025, 2026]), rng.randint(1, 12), rng.randint(1, 28)
        total = round(rng.uniform(5, 400), 2)
        values = dict(name=name, city=city, day=day, year=year, n=rng.randint(1, 9), total=f"{total:.2f}",
                      month=(MONTHS_EN if lang == "en" else MONTHS_ES)[month - 1],
                      item=rng.choice(ITEMS_EN if lang == "en" else ITEMS_ES))
        message = rng.choice(EN if lang == "en" else ES).format(**values)
        answer = {"customer": name, "city": city, "date": f"{year}-{month:02d}-{day:02d}", "total": total}
        rows.append({"instruction": ASK[lang], "input": message, "output": json.dumps(answer, ensure_ascii=False),
                     "lang": lang})
    return rows


def _cards() -> list[dict]:
    rows = [json.loads(line) for line in (HERE / "sample-format-tutor.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    cards = []
    for row in rows:
        lines = row["output"].split("\n")
        summary = lines[0].split(":", 1)[1].strip()
        points = [p.lstrip("• ").strip() for p in lines[1:-1]]
        cards.append({**row, "summary": summary, "points": points})
    return cards


def summary_rows() -> list[dict]:
    ask = {"en": "Summarise this text in one sentence.", "es": "Resume este texto en una frase."}
    return [{"instruction": ask[c["lang"]], "input": " ".join(c["points"]), "output": c["summary"], "lang": c["lang"]}
            for c in _cards()]


def preference_rows() -> list[dict]:
    return [{"prompt": c["instruction"], "chosen": c["output"], "rejected": f"{c['summary']} {' '.join(c['points'])}",
             "lang": c["lang"]} for c in _cards()]


def documents_text() -> str:
    corpus = json.loads((HERE / "rag" / "corpus.json").read_text(encoding="utf-8"))
    blocks = []
    for pages in corpus.values():
        for page in pages:
            blocks += [" ".join(p.split()) for p in page.split("\n\n") if p.strip()]
    return "\n\n".join(blocks) + "\n"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def outputs() -> dict[str, str]:
    """File name -> content of every file this script writes."""
    return {"sample-extract-json.jsonl": _jsonl(extraction_rows()), "sample-summaries.jsonl": _jsonl(summary_rows()),
            "sample-preferences.jsonl": _jsonl(preference_rows()), "sample-documents.txt": documents_text()}


if __name__ == "__main__":
    for name, text in outputs().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"{name}: {text.count(chr(10))} lines")
