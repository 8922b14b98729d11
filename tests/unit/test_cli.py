"""The `studio` command: data import/list/show/export and clear one-line errors with exit code 1."""
import json

from studio.cli import main


def test_data_import_list_export_round_trip(workspace, tmp_path, capsys):
    src = tmp_path / "faq.csv"
    src.write_text("pregunta;respuesta\n" + "".join(f"q{i};a{i}\n" for i in range(10)) + "vacía;\n",
                   encoding="cp1252")
    rc = main(["data", "import", str(src), "--name", "faq", "--map", "instruction=pregunta",
               "--map", "output=respuesta", "--split", "0.8,0.2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["format"] == "instruction" and out["imported"] == 10
    assert out["problems"] == [[12, "'output' is empty"]] and out["splits"]["validation"] == 2
    assert main(["data", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "faq"
    assert main(["data", "export", "faq", str(tmp_path / "out.jsonl")]) == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 8


def test_data_show_renders_the_loss_mask(workspace, tmp_path, capsys, smollm2_tokenizer_dir):
    src = tmp_path / "faq.jsonl"
    src.write_text('{"instruction": "Say hi", "output": "Hi"}\n{"instruction": "Say bye", "output": "Bye"}\n')
    assert main(["data", "import", str(src), "--name", "faq", "--template", "alpaca", "--split", "0.5,0.5"]) == 0
    capsys.readouterr()
    assert main(["data", "show", "faq", "--rendered", "1", "--model", str(smollm2_tokenizer_dir), "--json"]) == 0
    spans = json.loads(capsys.readouterr().out)["rendered"][0]
    assert "".join(s["text"] for s in spans if s["loss"]).startswith(("Hi", "Bye"))
    assert "### Instruction:" in "".join(s["text"] for s in spans if not s["loss"])


def test_user_errors_print_one_line_and_exit_1(workspace, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("name: x\ntrain: {lr: 0}\ndata: {dataset: sample-format-tutor}\n")
    assert main(["train", str(tmp_path / "r.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "Error: 'train.lr' must be greater than 0.0, got 0.0."
    assert main(["data", "import", str(tmp_path / "nope.csv"), "--name", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
