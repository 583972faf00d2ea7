"""The dashboard's study page with its per-trial lookups indexed: the same page, read in linear time."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
from optuna_dashboard import _note, _serializer

from sweep import dashboard_index
from sweep.store import save_first_trial_note


class CountingDict(dict):
    """A dict that counts the entries its items() hands out: how much of it a lookup reads."""

    seen = 0

    def items(self):  # noqa: ANN201 - dict's own
        for item in super().items():
            CountingDict.seen += 1
            yield item


def _noted_study(trials: int, storage: str | None = None) -> optuna.Study:
    study = optuna.create_study(storage=storage or optuna.storages.InMemoryStorage(), study_name="noted")
    for i in range(trials):
        trial = study.ask()
        save_first_trial_note(trial, f"**trial {i}** " + "x" * (3000 if i % 3 == 0 else 10))  # some in chunks
        study.tell(trial, float(i))
    # an old-style dashboard artifact of one trial, and the study's own note
    study._storage.set_study_system_attr(study._study_id, f"dashboard:artifacts:{trial._trial_id}:a1", '{"id": "a1"}')
    study._storage.set_study_system_attr(study._study_id, "dashboard:note_ver", 1)
    study._storage.set_study_system_attr(study._study_id, "dashboard:note_str:0", "the study's note")
    assert len(study._storage.get_study_system_attrs(study._study_id)) > trials
    return study


def test_every_trials_note_and_artifacts_are_the_dashboards_own() -> None:
    study = _noted_study(40)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    note, listing = dashboard_index.indexed(_note, _serializer.list_trial_artifacts)
    for trial in study.get_trials():
        own = _note.get_note_from_system_attrs(attrs, trial._trial_id)
        assert note.get_note_from_system_attrs(attrs, trial._trial_id) == own and own["version"] == 1
        assert listing(attrs, {}, trial) == _serializer.list_trial_artifacts(attrs, {}, trial)
    assert listing(attrs, {}, study.trials[-1]) == [{"id": "a1"}]
    assert note.get_note_from_system_attrs(attrs, None) == _note.get_note_from_system_attrs(attrs, None)
    assert note.split_body is _note.split_body  # the rest of the module is the dashboard's


def test_a_page_reads_the_study_attributes_once_not_once_per_trial() -> None:
    study = _noted_study(60)
    attrs = CountingDict(study._storage.get_study_system_attrs(study._study_id))
    note, listing = dashboard_index.indexed(_note, _serializer.list_trial_artifacts)

    def read(get_note, list_artifacts) -> int:
        CountingDict.seen = 0
        for trial in study.get_trials():
            get_note(attrs, trial._trial_id)
            list_artifacts(attrs, {}, trial)
        return CountingDict.seen

    assert read(_note.get_note_from_system_attrs, _serializer.list_trial_artifacts) == 2 * 60 * len(attrs)
    assert read(note.get_note_from_system_attrs, listing) == len(attrs)  # the index, built once


PAGE = """
import json, sys, optuna
from wsgiref.util import setup_testing_defaults
from optuna_dashboard import wsgi
from sweep import dashboard_index
if sys.argv[2] == "indexed":
    assert dashboard_index.install()
storage = optuna.storages.RDBStorage(sys.argv[1])
app = wsgi(storage)
sid = storage.get_all_studies()[0]._study_id
out = []
environ = {"PATH_INFO": f"/api/studies/{sid}", "QUERY_STRING": "after=0"}  # as the study page asks
setup_testing_defaults(environ)
body = b"".join(app(environ, lambda status, headers, *exc: out.append(status)))
assert out[0].startswith("200"), out
print(body.decode())
"""


def test_the_installed_index_serves_the_same_study_page(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'page.db'}"
    _noted_study(30, url)
    pages = {}
    for mode in ("plain", "indexed"):
        done = subprocess.run([sys.executable, "-c", PAGE, url, mode], capture_output=True, text=True, check=True)
        pages[mode] = json.loads(done.stdout)
    assert pages["indexed"] == pages["plain"]
    assert sum(bool(t["note"]["body"]) for t in pages["plain"]["trials"]) == 30


def test_a_key_belongs_to_the_trial_its_id_names() -> None:
    assert dashboard_index.trial_of("dashboard:12:note_str:3") == 12
    assert dashboard_index.trial_of("dashboard:artifacts:7:abc") == 7
    assert dashboard_index.trial_of("dashboard:note_ver") is None and dashboard_index.trial_of("other") is None
