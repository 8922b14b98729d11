"""The Preferences tab's engine facade: candidate generation, export, agreement, the arena and the AI judge.

`PrefService` is what the Preferences tab and `studio prefs` call. Generating candidates and running the
judge are background jobs on one worker thread of the service (`start_generation` / `judge` return a job
id at once; `job` reports candidates done of total), recorded as rows of the `jobs` table (kinds
'generate' and 'judge', `studio.jobs.threads`) that `studio jobs` lists, cancels and retries, while the models themselves run on the app's one
inference thread through the shared `ModelPool`, as the playground's do. A generation job creates its
ranking task set only at the end, so a failed or cancelled job leaves no half-filled task set behind.

`export` and `arena_export` write preference datasets through `studio.prefs.export`. The arena keeps its
duels and votes in the preference store (`arena_duels`, `arena_votes`). Storing rankings is
`store.PrefStore`'s job, the statistics are `agreement`'s and `arena`'s, the judge's scoring `judge`'s.
"""
from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from studio.errors import StudioError
from studio.generation import GenerationSettings, ModelPool, inference_thread, stream_chat
from studio.jobs.threads import JobThread, ThreadJob
from studio.prefs import agreement as stats
from studio.prefs import arena
from studio.prefs.consensus import borda
from studio.prefs.export import export_task_set, save_rows, usable_rows
from studio.prefs.ranking import PreferenceRows, ranks
from studio.prefs.slots import default_settings
from studio.prefs.sources import load_prompts, prompt_sources, resolve_target
from studio.prefs.store import PrefStore, _check_set_name
from studio.phase import Phase

MIN_K, MAX_K = 2, 6
VOTES = {"1": "a", "2": "b", "tie": "tie", "both_bad": "both_bad"}
ARENA_DATASET = "arena-pairs"


@dataclass(kw_only=True)
class PrefJob(ThreadJob):
    """A background job: generating candidates or judging them. `done`/`total` count candidate answers."""

    task_set: str
    total: int
    done: int = 0

    def as_dict(self) -> dict:
        end = self.finished or time.time()
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "task_set": self.task_set, "error": self.error.message if self.error else None,
                "seconds": round(end - self.started, 2) if self.started else 0.0, "result": self.result}


def _failed(job: ThreadJob, error: Exception) -> StudioError:
    return StudioError(f"The {job.kind} job failed: {error}.", field="prefs.job", key="prefs.service.failed",
                       kind=job.kind, reason=str(error))


def _messages(prompt: dict) -> list[dict]:
    system = [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []
    return system + [{"role": "user", "content": prompt["prompt"]}]


class PrefService:
    def __init__(self, ws: Any, pool: ModelPool | None = None):
        self.ws = ws
        self.store = PrefStore(ws)
        self.pool = pool or ModelPool(ws, capacity=2)
        self.jobs = JobThread(ws, "studio-prefs", _failed)

    # --- prompts ---------------------------------------------------------------------------------
    def prompt_sources(self) -> dict[str, list[str]]:
        return prompt_sources(self.ws)

    def load_prompts(self, source: str, value: str, column: str | None = None, limit: int | None = None
                     ) -> list[dict]:
        return load_prompts(self.ws, source, value, column, limit)

    def task_sets(self) -> list[dict]:
        return self.store.task_sets()

    # --- the annotator's side and accounts: the store's operations, so the UI needs only this service -----------
    def next_item(self, task_set: str, annotator: str) -> dict | None:
        return self.store.next_item(task_set, annotator)

    def progress(self, task_set: str) -> dict:
        return self.store.progress(task_set)

    def submit(self, item_id: int, annotator: str, ranking: list[list[int]], rationale: str = "",
               seconds: float | None = None) -> dict:
        return self.store.submit(item_id, annotator, ranking, rationale=rationale, seconds=seconds)

    def skip(self, item_id: int, annotator: str, seconds: float | None = None) -> dict:
        return self.store.skip(item_id, annotator, seconds=seconds)

    def flag(self, item_id: int, annotator: str, reason: str, seconds: float | None = None) -> dict:
        return self.store.flag(item_id, annotator, reason, seconds=seconds)

    def check_password(self, name: str, password: str) -> bool:
        return self.store.check_password(name, password)

    def add_annotator(self, name: str, password: str | None = None, role: str = "annotator") -> dict:
        return self.store.add_annotator(name, password, role)

    def import_rankings(self, task_set: str, parsed_items: list[dict], source: str | Path = "import") -> dict:
        return self.store.import_rankings(task_set, parsed_items, source)

    # --- jobs --------------------------------------------------------------------------------------
    def _step(self, job: PrefJob, done: int, phase: str) -> None:
        job.done = done
        self.jobs.progress(job, done / job.total if job.total else 0.0, phase)

    def _job(self, job_id: str) -> PrefJob:
        return self.jobs.get(job_id, StudioError(f"There is no preferences job '{job_id}'.", field="prefs.job",
                                                 key="prefs.service.no_job", job_id=job_id))

    def job(self, job_id: str) -> dict:
        """{id, kind, state, done, total, task_set, error, seconds, result}."""
        return self._job(job_id).as_dict()

    def failure(self, job_id: str) -> StudioError | None:
        """Why a job did not complete (for a message in the user's language); None while it runs or once done."""
        job = self._job(job_id)
        if job.state == "cancelled":
            return StudioError("The job was cancelled before it finished; start it again to finish the work.",
                               field="prefs.job", key="prefs.service.cancelled")
        return job.error

    def wait(self, job_id: str, timeout: float = 3600) -> dict:
        self._job(job_id)
        return self.jobs.wait(job_id, timeout).as_dict()

    def cancel(self, job_id: str) -> None:
        """Stop a job after the answer in progress; a cancelled generation creates no task set."""
        self._job(job_id)
        self.jobs.cancel(job_id)

    def shutdown(self) -> None:
        self.jobs.shutdown()

    # --- candidate generation ----------------------------------------------------------------------
    def start_generation(self, task_set: str, prompts: Sequence[dict | str], targets: Sequence[str], k: int,
                         settings: Sequence[GenerationSettings] | None = None, overlap: int = 1,
                         guidelines: str = "", created_by: str = "") -> str:
        """Queue K candidates per prompt; candidate j comes from targets[j % len(targets)] with
        settings[j % len(settings)] (default: `default_settings`); when fewer settings than K are given, a reused
        fixed seed becomes seed + j so no two candidates repeat each other (`slots.slot_plan` gives K targets and K
        settings, one per slot, for per-candidate models and settings). Checks everything it can before
        queueing; the task set is created when the last answer is in. Returns the job id."""
        name = _check_set_name(task_set)
        if any(row["name"] == name for row in self.store.task_sets()) or any(
                j.active and j.kind == "generate" and j.task_set == name for j in self.jobs.jobs.values()):
            raise StudioError(f"A task set named '{name}' already exists; pick another name.",
                              field="prefs.task_set", key="prefs.service.set_exists", name=name)
        if isinstance(k, float) and k.is_integer():  # a number box's 4.0
            k = int(k)
        if not isinstance(k, int) or isinstance(k, bool) or not MIN_K <= k <= MAX_K:
            raise StudioError(f"K (candidates per prompt) is {k}; use {MIN_K} to {MAX_K}: at least two answers "
                              "to compare, few enough to rank at a glance.", field="prefs.k",
                              key="prefs.service.bad_k", k=k, low=MIN_K, high=MAX_K)
        if int(overlap) < 1:
            raise StudioError(f"The overlap (annotators per item) is {overlap}; use 1 or more.",
                              field="prefs.overlap", key="prefs.service.bad_overlap", value=overlap)
        clean = [{"prompt": p, "system": ""} if isinstance(p, str) else
                 {"prompt": str(p.get("prompt") or ""), "system": str(p.get("system") or "")} for p in prompts or []]
        clean = [p for p in clean if p["prompt"].strip()]
        if not clean:
            raise StudioError("There are no prompts to answer; type some or pick a dataset or saved exchanges.",
                              field="prefs.prompts", key="prefs.service.no_prompts")
        specs = [t.strip() for t in targets or [] if t and t.strip()]
        if not specs:
            raise StudioError("No model was chosen; pick one or more models or runs to write the candidates.",
                              field="prefs.models", key="prefs.service.no_models")
        resolved = [resolve_target(self.ws, spec) for spec in specs]
        settings = list(settings) if settings else default_settings(k)
        job = PrefJob(kind="generate", task_set=name, total=len(clean) * k)
        params = {"task_set": name, "prompts": clean, "targets": specs, "k": k,
                  "settings": [asdict(s) for s in settings], "overlap": int(overlap), "guidelines": guidelines,
                  "created_by": created_by}
        return self.jobs.submit(job, f"{name}: {len(clean)} prompts x {k} from {', '.join(dict.fromkeys(specs))}",
                                params, self._generate, clean, resolved, k, settings, int(overlap), guidelines,
                                created_by, owner=created_by or None)

    def _answer(self, target, messages: list[dict], settings: GenerationSettings) -> str:
        answer = ""
        for answer in stream_chat(self.ws, target.model, target.run_id, messages, settings, pool=self.pool):
            pass
        return answer.strip()

    def _generate(self, job: PrefJob, prompts, targets, k, settings, overlap, guidelines, created_by) -> dict:
        texts: dict[tuple[int, int], dict] = {}
        # Model by model (slots sharing a model together), so a pool smaller than the model list loads each once.
        labels = [t.label for t in targets]
        for t in sorted(range(len(targets)), key=lambda t: labels.index(labels[t])):
            target = targets[t]
            for p, prompt in enumerate(prompts):
                for j in range(t, k, len(targets)):
                    self._step(job, job.done, Phase(f"answer {job.done + 1} of {job.total}", "answer",
                                                    done=job.done + 1, total=job.total))
                    chosen = settings[j % len(settings)]
                    if j >= len(settings) and chosen.seed >= 0:
                        # Settings reused with a fixed seed would repeat an earlier candidate word for word.
                        chosen = replace(chosen, seed=chosen.seed + j)
                    texts[p, j] = {"text": self._answer(target, _messages(prompt), chosen), "model": target.label,
                                   "settings": asdict(chosen)}
                    job.done += 1
        self._step(job, job.done, Phase("saving the task set", "saving_task_set"))
        items = [{**prompt, "candidates": [texts[p, j] for j in range(k)]} for p, prompt in enumerate(prompts)]
        labels = ", ".join(dict.fromkeys(t.label for t in targets))
        return self.store.create_task_set(job.task_set, items, k=k, overlap=overlap, guidelines=guidelines,
                                          created_by=created_by, source=f"generated by {labels}")

    # --- export ------------------------------------------------------------------------------------
    def export(self, task_set: str, strategy: str = "all_pairs", fmt: str = "dpo", conversational: bool = False,
               name: str | None = None, min_annotators: int = 1) -> dict:
        """The task set's consensus rankings as a studio dataset, JSONL and Parquet (`export.export_task_set`).
        Returns {dataset, rows, items, dropped, empty, skipped_items, duplicates, items_without_rows, jsonl,
        parquet, format, strategy, conversational}: `items` exported, `dropped` pairs with equal texts, `empty`
        rows left out for an empty answer, `skipped_items` items with fewer than `min_annotators` rankings."""
        return export_task_set(self.ws, self.store.rankings(task_set), task_set, strategy, fmt, conversational,
                               name, min_annotators)

    # --- agreement ---------------------------------------------------------------------------------
    def agreement(self, task_set: str, contested: int = 10) -> dict:
        """{"alpha": Krippendorff's ordinal alpha, "items": [{item_id, prompt, w, annotators}], "annotators":
        {name: {tau, items}}, "contested": [{item_id, prompt, w, annotators}] (lowest W first), "consensus":
        "borda"}, plus "judge": {mean, compared, items: [{item_id, judge, tau}], judges: {name: {mean, compared}}}
        when an AI judge left suggestions on ranked items: Kendall's tau-b of its ranking against the annotators'
        Borda consensus, per item and averaged."""
        data = self.store.rankings(task_set)
        per_item = {item["item_id"]: {r["annotator"]: r["ranking"] for r in item["rankings"]}
                    for item in data if item["rankings"]}
        prompts = {item["item_id"]: item["prompt"] for item in data}
        out = {"task_set": task_set, "consensus": "borda",
               "alpha": stats.krippendorff_alpha_ordinal(list(per_item.values())),
               "items": [{"item_id": i, "prompt": prompts[i], "w": stats.kendalls_w(list(r.values())),
                          "annotators": len(r)} for i, r in per_item.items()],
               "annotators": stats.annotator_agreement(per_item),
               "contested": [{"item_id": i, "prompt": prompts[i], "w": w, "annotators": len(per_item[i])}
                             for i, w in stats.contested(per_item, contested)]}
        judged = self._judge_agreement(data)
        if judged:
            out["judge"] = judged
        return out

    def _judge_agreement(self, data: list[dict]) -> dict | None:
        """{"mean", "compared", "items": [{item_id, judge, tau}], "judges": {name: {"mean", "compared"}}}, or None
        without suggestions. The top-level mean pools every judge's items (usually there is one judge)."""
        suggestions = self._suggestions([item["item_id"] for item in data])
        rows: list[dict] = []
        for item in data:
            if not item["rankings"]:
                continue
            human = ranks(borda([r["ranking"] for r in item["rankings"]], len(item["candidates"])))
            for judge, ranking in suggestions.get(item["item_id"], {}).items():
                rows.append({"item_id": item["item_id"], "judge": judge,
                             "tau": stats.kendall_tau_b(ranks(ranking), human)})
        if not rows:
            return None

        def summary(taus: list[float]) -> dict:
            return {"mean": sum(taus) / len(taus) if taus else None, "compared": len(taus)}

        judges = {name: summary([r["tau"] for r in rows if r["judge"] == name and r["tau"] is not None])
                  for name in dict.fromkeys(r["judge"] for r in rows)}
        return {**summary([r["tau"] for r in rows if r["tau"] is not None]), "items": rows, "judges": judges}

    def _suggestions(self, item_ids: list[int]) -> dict[int, dict[str, list[list[int]]]]:
        if not item_ids:
            return {}
        with self.store._db() as conn:
            rows = conn.execute(f"SELECT item_id, judge, ranking_json FROM suggestions WHERE item_id IN "
                                f"({','.join('?' * len(item_ids))}) ORDER BY judge", item_ids).fetchall()
        out: dict[int, dict[str, list[list[int]]]] = {}
        for row in rows:
            out.setdefault(row["item_id"], {})[row["judge"]] = json.loads(row["ranking_json"])
        return out

    # --- the AI judge ------------------------------------------------------------------------------
    def judge(self, task_set: str, judge_target: str, rubric: str) -> str:
        """Queue the judge over every item of `task_set` (see `studio.prefs.judge`); its rankings become
        suggestions named after `judge_target`, with each candidate's P(Yes) as the rationale. Returns the job id.
        Suggestions are only suggestions: annotators accept or override them and only their rankings are exported;
        a 135M judge barely reads a rubric, so its rankings are close to noise (see `studio.prefs.judge`)."""
        if not (rubric or "").strip():
            raise StudioError("The rubric is empty; write what a good answer does (e.g. 'answers in one sentence, "
                              "politely') so the judge has something to check.", field="prefs.rubric",
                              key="prefs.service.no_rubric")
        items = self.store.rankings(task_set)
        target = resolve_target(self.ws, judge_target)
        job = PrefJob(kind="judge", task_set=self.store.task_set(task_set)["name"],
                      total=sum(len(item["candidates"]) for item in items))
        params = {"task_set": job.task_set, "judge_target": judge_target, "rubric": rubric.strip()}
        return self.jobs.submit(job, f"{job.task_set}: judged by {target.label}", params, self._judge, items, target,
                                rubric.strip())

    def _judge(self, job: PrefJob, items: list[dict], target, rubric: str) -> dict:
        from studio.prefs.judge import ranking_from_scores, score_answers

        entry = self.pool.get(target.model, target.run_id)

        def score(item: dict) -> list[float]:
            with entry.lock:
                return score_answers(entry.model, entry.tokenizer, rubric, item["prompt"], item["candidates"],
                                     item["system"])

        for item in items:
            self._step(job, job.done, Phase(f"item {job.done + 1} of {job.total}", "judging", done=job.done + 1,
                                            total=job.total))
            scores = inference_thread().submit(score, item).result()
            rationale = json.dumps({"p_yes": [round(s, 4) for s in scores],
                                    "method": "P(' Yes') vs P(' No') after the rubric, prompt and answer"})
            self.store.add_suggestion(item["item_id"], target.label, ranking_from_scores(scores), rationale)
            job.done += len(scores)
        return {"judge": target.label, "items": len(items)}

    # --- the arena ---------------------------------------------------------------------------------
    def arena_duel(self, prompt: str, model_a: str, model_b: str, settings: GenerationSettings | None = None,
                   system: str = "") -> dict:
        """Both models answer `prompt`; the answers come back as sides 1 and 2 in a random order, without the
        models' names, which `arena_vote` reveals. Returns {duel_id, answer_1, answer_2}."""
        if not (prompt or "").strip():
            raise StudioError("The arena prompt is empty; type a prompt for both models to answer.",
                              field="prefs.arena.prompt", key="prefs.service.arena_no_prompt")
        targets = [resolve_target(self.ws, spec) for spec in (model_a, model_b)]
        if targets[0].label == targets[1].label:
            raise StudioError(f"Both sides are '{targets[0].label}'; pick two different models or runs to compare.",
                              field="prefs.arena.models", key="prefs.service.arena_same_model",
                              model=targets[0].label)
        settings = settings or GenerationSettings()
        prompt_row = {"prompt": prompt.strip(), "system": (system or "").strip()}
        answers = [self._answer(t, _messages(prompt_row), settings) for t in targets]
        if random.random() < 0.5:
            targets, answers = targets[::-1], answers[::-1]
        duel_id = uuid.uuid4().hex[:12]
        with self.store._tx() as conn:
            conn.execute("INSERT INTO arena_duels (id, prompt, system, model_1, model_2, answer_1, answer_2, "
                         "settings_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (duel_id, prompt_row["prompt"], prompt_row["system"], targets[0].label, targets[1].label,
                          answers[0], answers[1], json.dumps(asdict(settings)), time.time()))
        return {"duel_id": duel_id, "answer_1": answers[0], "answer_2": answers[1]}

    def arena_vote(self, duel_id: str, outcome: str, voter: str = "") -> dict:
        """Store the vote on a duel ("1", "2", "tie" or "both_bad") and reveal who was who: {model_1, model_2}."""
        if outcome not in VOTES:
            raise StudioError(f"Vote '{outcome}' is not one of {', '.join(VOTES)}.", field="prefs.arena.vote",
                              key="prefs.service.arena_bad_vote", outcome=str(outcome), choices=", ".join(VOTES))
        with self.store._tx() as conn:
            duel = conn.execute("SELECT * FROM arena_duels WHERE id = ?", (duel_id,)).fetchone()
            if duel is None:
                raise StudioError(f"There is no open duel '{duel_id}' (it was voted on already or never shown); "
                                  "start a new duel.", field="prefs.arena.duel", key="prefs.service.arena_no_duel",
                                  duel_id=duel_id)
            conn.execute("INSERT INTO arena_votes (prompt, system, model_a, model_b, answer_a, answer_b, outcome, "
                         "voter, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (duel["prompt"], duel["system"], duel["model_1"], duel["model_2"], duel["answer_1"],
                          duel["answer_2"], VOTES[outcome], (voter or "").strip(), time.time()))
            conn.execute("DELETE FROM arena_duels WHERE id = ?", (duel_id,))
        return {"model_1": duel["model_1"], "model_2": duel["model_2"]}

    def arena_votes(self) -> list[dict]:
        with self.store._db() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM arena_votes ORDER BY id")]

    def leaderboard(self, rounds: int = 1000) -> list[dict]:
        """`arena.leaderboard` rows {model, rating, low, high, wins, losses, ties, both_bad, count, votes (= count)},
        best first; [] before the first vote."""
        votes = [(v["model_a"], v["model_b"], v["outcome"]) for v in self.arena_votes()]
        return [{**row, "votes": row["count"]} for row in arena.leaderboard(votes, rounds)] if votes else []

    def arena_export(self, name: str | None = None, conversational: bool = False) -> dict:
        """The decisive arena votes as preference pairs (winner chosen), saved like `export`. Returns {dataset,
        rows, votes, dropped, empty, jsonl, parquet, conversational}."""
        votes = self.arena_votes()
        if not votes:
            raise StudioError("The arena has no votes yet; vote on a few duels first.", field="prefs.arena",
                              key="prefs.service.arena_no_votes")
        decided = [(v["model_a"], v["model_b"], v["outcome"]) for v in votes]

        def build(conv: bool) -> PreferenceRows:
            return arena.vote_pairs(decided, votes, conversational=conv)

        result, rows, plain, empty = usable_rows(build, conversational)
        if not rows:
            raise StudioError(f"None of the {len(votes)} arena votes picks a winner between two different, non-empty "
                              "answers (ties and 'both bad' give no pair); vote on more duels.", field="prefs.arena",
                              key="prefs.service.arena_no_pairs", votes=len(votes))
        saved = save_rows(self.ws, name or ARENA_DATASET, rows, plain)
        return {**saved, "rows": len(rows), "votes": len(votes), "dropped": result.dropped, "empty": empty,
                "conversational": conversational}
