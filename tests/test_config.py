"""Study specs (``mgmt_audit.study.spec``): every shipped spec loads in both profiles, profiles
override the base, bad specs fail with a message naming the file and key, specs are found in the
documented order, and the typed accessors read preprocessing keys and ``+``-joined modality choices."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mgmt_audit.cli import main
from mgmt_audit.study.spec import (
    STUDIES_ENV,
    find_study,
    list_studies,
    load_study,
    modalities_of,
    parse_study,
    study_name,
)
from mgmt_audit.errors import ConfigError
from mgmt_audit.train.config import TrainConfig

REPO_STUDIES = Path(__file__).resolve().parent.parent / "studies"
SHIPPED = sorted(p.stem for p in REPO_STUDIES.glob("*.toml"))
REQUIRED = {
    "cnn2d_sweep", "effnet3d_sweep", "roi_resnet_sweep", "fusion_sweep", "simclr_sweep", "vit_sweep",
    "resnet10_seeds", "custom_cnn_sweep", "mnist_control", "demo", "ssl_sweep", "transfer_sweep", "geometry_sweep",
}

MINIMAL = """
description = "test spec"
n_trials = 6
null_trials = 2
[data]
dataset = "rsna_miccai_2021"
modalities = ["FLAIR"]
view = "slices"
[data.preprocess]
size = 16
depth = 8
[model]
family = "resnet18_2d"
preset = "smoke"
[train]
lr = 1e-3
epochs = 3
[search]
lr = { type = "log-float", low = 1e-4, high = 1e-2 }
[seeds]
count = 2
[profiles.paper]
[profiles.smoke]
n_trials = 4
[profiles.smoke.train]
epochs = 1
"""


def spec_from(text: str, tmp_path: Path, name: str = "mini", profile: str | None = None):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return parse_study(tomllib.loads(text), path, profile)


def test_every_required_study_is_shipped():
    assert REQUIRED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_shipped_spec_loads_and_builds_a_training_config(name, profile):
    spec = load_study(name, profile)
    assert spec.profile == profile and spec.description
    assert 0 <= spec.null_trials <= spec.n_trials - spec.null_trials
    for param in spec.search:  # every categorical choice gives a valid training config
        for choice in param.choices:
            TrainConfig.from_dict(spec.train_dict({**spec.example_params(), param.key: choice}))


@pytest.mark.parametrize("name", SHIPPED)
def test_smoke_profile_is_cpu_sized(name):
    spec = load_study(name, "smoke")
    size = spec.preprocess.get("size", 256)
    sizes = [c for p in spec.search if p.key == "preprocess.size" for c in p.choices] or [size]
    assert max(sizes) <= 64 and spec.preprocess.get("depth", 64) <= 16
    assert spec.model.get("preset") == "smoke"
    if name == "leak_demo":  # sized by the leak it must show: 128 patients x 8 slices, 12 epochs, ~7 s a trial
        assert spec.n_trials <= 6 and spec.data["phantom"]["patients"] <= 128 and spec.train["epochs"] <= 12
        return
    assert spec.n_trials <= 5  # the demo study: two configurations x two seeds and one null
    if spec.data["dataset"] != "digits":  # the digits control has no phantom
        assert spec.data["phantom"]["patients"] <= 32
    searched = [p.high for p in spec.search if p.key == "epochs"]
    assert max(searched or [spec.train["epochs"]]) <= 8


def test_profile_values_override_the_base(tmp_path):
    paper = spec_from(MINIMAL, tmp_path, profile="paper")
    smoke = spec_from(MINIMAL, tmp_path, profile="smoke")
    assert (paper.n_trials, paper.train["epochs"], paper.train["lr"]) == (6, 3, 1e-3)
    assert (smoke.n_trials, smoke.train["epochs"], smoke.train["lr"]) == (4, 1, 1e-3)
    assert paper.spec_hash != smoke.spec_hash


def test_overrides_merge_over_the_profile_and_enter_the_hash():
    smoke = load_study("resnet10_seeds", "smoke")
    demo = load_study("resnet10_seeds", "smoke", overrides={"train": {"test_fraction": 0.4},
                                                          "analysis": {"margin": 0.7}})
    assert demo.train["test_fraction"] == 0.4 and demo.train["lr"] == smoke.train["lr"]
    assert demo.margin == 0.7 and smoke.margin == 0.65 and demo.spec_hash != smoke.spec_hash
    with pytest.raises(ConfigError, match="unknown key"):
        load_study("resnet10_seeds", "smoke", overrides={"trian": {}})
    with pytest.raises(ConfigError, match="analysis.margin must be an AUC"):
        load_study("resnet10_seeds", "smoke", overrides={"analysis": {"margin": 0.4}})


def test_published_settings_of_the_kaggle_winner():
    spec = load_study("resnet10_seeds", "paper")
    config = TrainConfig.from_dict(spec.train_dict({}))
    assert (config.model, config.optimizer, config.lr, config.epochs) == ("resnet10_3d", "adam", 1e-4, 15)
    assert spec.preprocess["size"] == 256 and spec.preprocess["depth"] == 64 and len(spec.seeds) == 10


def test_spec_hash_ignores_the_target_but_not_the_trials(tmp_path):
    base = spec_from(MINIMAL, tmp_path)
    more = spec_from(MINIMAL.replace("n_trials = 6", "n_trials = 9"), tmp_path)
    other_lr = spec_from(MINIMAL.replace("lr = 1e-3", "lr = 2e-3"), tmp_path)
    assert base.spec_hash == more.spec_hash != other_lr.spec_hash


def test_search_keys_map_into_the_training_config(tmp_path):
    spec = load_study("vit_sweep", "smoke")
    config = spec.train_dict({"lr": 0.01, "model_params.patch_size": "16x16x8", "model_params.hidden_size": 64})
    assert config["lr"] == 0.01 and config["model_params"]["patch_size"] == (16, 16, 8)
    assert config["model_params"]["hidden_size"] == 64
    assert spec.train_dict({"model_params.patch_size": 16})["model_params"]["patch_size"] == (16, 16, 16)
    cnn = load_study("cnn2d_sweep", "paper")
    point = {"model": "densenet121_2d", "modalities": "T1wCE", "preprocess.size": 512}
    assert cnn.train_dict(point)["model"] == "densenet121_2d"
    assert cnn.train_dict(point)["modalities"] == ["T1wCE"]
    assert "growth_rate" in cnn.train_dict(point)["model_params"]
    assert cnn.preprocess_dict(point)["size"] == 512
    mini = spec_from(MINIMAL, tmp_path)
    assert mini.train_dict({"modalities": "FLAIR+T1wCE"})["modalities"] == ["FLAIR", "T1wCE"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('[seeds]', '[seedz]'), "unknown key(s) ['seedz']"),
        (('type = "log-float", low = 1e-4', 'type = "log-float", low = 0.0'), "search.lr: a log-float needs low > 0"),
        (('type = "log-float"', 'type = "gaussian"'), "search.lr.type must be one of"),
        (('[profiles.smoke]\nn_trials = 4\n[profiles.smoke.train]', '[profiles.tiny]\nn_trials = 4\n[profiles.tiny.train]'),
         "[profiles.smoke] is missing"),
        (('null_trials = 2', 'null_trials = 4'), "null_trials (4) must be at most"),
        (('n_trials = 6', 'n_trials = 0'), "n_trials must be an integer >= 1, got 0"),
        (('family = "resnet18_2d"', 'family = "resnet99"'), "unknown model 'resnet99'"),
        (('lr = 1e-3\nepochs = 3', 'lr = 1e-3\nepochs = 3\nbogus = 1'), "training config: unknown key(s) ['bogus']"),
        (('view = "slices"', 'view = "slices"\nphantom = { patients = 0 }'), "data.phantom.patients must be an integer >= 1"),
        (('[seeds]\ncount = 2', '[seeds]\ncount = 2\n[sampler]\nname = "tpe"\nwarmup = 3'),
         "sampler 'tpe' has no setting(s) ['warmup']"),
        (('[seeds]\ncount = 2', '[seeds]\ncount = 2\n[sampler]\nname = "grid"'),
         "the grid sampler needs categorical or int dimensions"),
        (('size = 16', 'size = 16\nslice_mode = "middle"'), "slice_mode must be one of"),
        (('[seeds]', '[search.modalities]\ntype = "categorical"\nchoices = ["FLAIR", "FLAIR+DWI"]\n[seeds]'),
         "search.modalities.choices: 'FLAIR+DWI' must join distinct names from"),
        (('[seeds]', '[search.modalities]\ntype = "categorical"\nchoices = ["T2w+T2w"]\n[seeds]'),
         "search.modalities.choices: 'T2w+T2w' must join distinct names"),
    ],
)
def test_bad_spec_names_file_and_key(tmp_path, edit, message):
    old, new = edit
    assert old in MINIMAL
    with pytest.raises(ConfigError) as info:
        spec_from(MINIMAL.replace(old, new), tmp_path)
    assert message in str(info.value) and str(tmp_path / "mini.toml") in str(info.value)


def test_typed_accessors_for_preprocessing_keys_and_modality_choices(tmp_path):
    cnn = load_study("cnn2d_sweep", "paper")
    searched = {p.key: p.preprocess_field for p in cnn.search}
    assert searched["preprocess.size"] == "size" and searched["lr"] is None
    assert [p.key for p in cnn.preprocess_search] == ["preprocess.size"]
    modalities = next(p for p in cnn.search if p.key == "modalities")
    assert all(choice == modalities_of(raw) for choice, raw in zip(modalities.modality_choices, modalities.choices))
    assert modalities_of("FLAIR+T1wCE") == ("FLAIR", "T1wCE") and modalities_of("T2w") == ("T2w",)
    text = MINIMAL.replace("[seeds]", '[search.modalities]\ntype = "categorical"\nchoices = ["T2w+FLAIR", "T1w"]\n[seeds]')
    spec = spec_from(text, tmp_path)
    assert spec.modalities_read == ("FLAIR", "T2w", "T1w")  # data.modalities first, then each choice's new ones
    assert spec_from(MINIMAL, tmp_path).preprocess_search == () and spec.search[0].modality_choices == ()


def test_a_study_argument_is_a_name_or_the_path_of_its_spec(tmp_path):
    (tmp_path / "mine.toml").write_text(MINIMAL)
    assert study_name(str(tmp_path / "mine.toml")) == "mine"
    assert study_name("vit_sweep") == "vit_sweep" and study_name("not_written_yet") == "not_written_yet"
    with pytest.raises(ConfigError, match="study file .*gone.toml does not exist"):
        study_name(str(tmp_path / "gone.toml"))


def test_invalid_toml_and_name_mismatch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "broken.toml").write_text("description = \n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_study("broken")
    (tmp_path / "studies" / "named.toml").write_text('name = "other"\n' + MINIMAL)
    with pytest.raises(ConfigError, match="must match the file name 'named'"):
        load_study("named")
    with pytest.raises(ConfigError, match="no study named 'nowhere'.*known studies: .*demo"):
        load_study("nowhere")


def test_lookup_order_cwd_then_env_then_package(tmp_path, monkeypatch):
    env_dir, cwd = tmp_path / "env", tmp_path / "cwd"
    (cwd / "studies").mkdir(parents=True)
    env_dir.mkdir()
    (env_dir / "demo.toml").write_text(MINIMAL)
    (env_dir / "envonly.toml").write_text(MINIMAL)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(STUDIES_ENV, str(env_dir))
    assert find_study("demo") == env_dir / "demo.toml"  # env before the package tree
    assert find_study("cnn2d_sweep") == REPO_STUDIES / "cnn2d_sweep.toml"
    (cwd / "studies" / "demo.toml").write_text(MINIMAL)
    assert find_study("demo").resolve() == (cwd / "studies" / "demo.toml").resolve()  # ./studies first
    origins = {name: origin for name, _, origin in list_studies()}
    assert origins["demo"] == "./studies" and origins["envonly"] == f"${STUDIES_ENV}"
    assert origins["vit_sweep"] == "package source tree"


def test_cli_show_prints_the_resolved_profile_as_toml(capsys):
    assert main(["study", "show", "resnet10_seeds", "--profile", "smoke"]) == 0
    text = capsys.readouterr().out
    assert '# profile = "smoke"' in text
    shown = tomllib.loads(text)
    spec = load_study("resnet10_seeds", "smoke")
    assert shown["train"] == spec.resolved["train"] and shown["data"] == spec.resolved["data"]
    assert shown["description"].strip() == spec.description and "profiles" not in shown


def test_cli_list_and_bad_profile(capsys):
    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    assert "searched: ./studies" in out and all(name in out for name in REQUIRED)
    assert main(["study", "show", "demo", "--profile", "laptop"]) == 2
    assert "no profile 'laptop'; choose one of ['paper', 'smoke']" in capsys.readouterr().err


SIMCLR = MINIMAL.replace('family = "resnet18_2d"', 'family = "simclr_resnet18"') + """
[pretrain]
epochs = 2
modalities = ["FLAIR", "T2w"]
"""


def test_pretrain_table_gets_defaults_and_enters_the_hash(tmp_path):
    spec = spec_from(SIMCLR, tmp_path)
    assert spec.pretrain == {"method": "simclr", "epochs": 2, "batch_size": 64, "lr": 1e-3, "temperature": 0.5,
                             "projection_dim": 128, "momentum": 0.99, "modalities": ["FLAIR", "T2w"]}
    assert spec.init_of({}) == "simclr" and spec_from(MINIMAL, tmp_path).init_of({}) == "scratch"
    assert spec_from(MINIMAL, tmp_path).pretrain == {}
    longer = spec_from(SIMCLR.replace("epochs = 2", "epochs = 3"), tmp_path)
    assert longer.pretrain["epochs"] == 3 and longer.spec_hash != spec.spec_hash


def test_simclr_sweep_pretrains_all_sequences_then_finetunes_the_published_way():
    paper = load_study("simclr_sweep", "paper")
    config = TrainConfig.from_dict(paper.train_dict(paper.example_params()))
    assert (config.model, config.optimizer, config.lr, config.batch_size) == ("simclr_resnet18", "adamw", 1e-3, 16)
    assert config.view == "stack" and config.view_params["n_slices"] == 20 and config.modalities == ("FLAIR",)
    assert paper.pretrain["modalities"] == ["FLAIR", "T1w", "T1wCE", "T2w"]
    smoke = load_study("simclr_sweep", "smoke")
    assert smoke.pretrain["epochs"] == 1 and smoke.pretrain["slices"] <= 4
    assert smoke.data["view_params"]["n_slices"] <= smoke.preprocess["depth"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('family = "simclr_resnet18"', 'family = "fusion_resnet18"'),
         "[pretrain] trains a 2D encoder that loads into one module, which ['fusion_resnet18'] lack(s)"),
        (('family = "simclr_resnet18"', 'family = "resnet10_3d"'), "which ['resnet10_3d'] lack(s)"),
        (("epochs = 2\n", 'epochs = 2\nmethod = "swav"\n'), "pretrain.method must be one of ['simclr', 'byol'"),
        (("epochs = 2\n", "epochs = 2\nmomentum = 1.0\n"), "pretrain.momentum must be a number in [0, 1)"),
        (("epochs = 2\n", "epochs = 2\nbatch_size = 1\n"), "pretrain.batch_size must be an integer >= 2"),
        (('"FLAIR", "T2w"', '"FLAIR", "PD"'), "pretrain.modalities must be distinct names"),
        (("epochs = 2\n", "epochs = 2\nlr = 0\n"), "pretrain.lr must be a number > 0"),
        (("epochs = 2\n", "epochs = 2\nwarmup = 3\n"), "unknown key(s) ['pretrain.warmup']"),
        (('preset = "smoke"', 'preset = "smoke"\nparams = { encoder_state = "enc.pt" }'),
         "model.params.encoder_state and [pretrain] both set the encoder"),
    ],
)
def test_bad_pretrain_table_names_file_and_key(tmp_path, edit, message):
    old, new = edit
    assert old in SIMCLR
    with pytest.raises(ConfigError) as info:
        spec_from(SIMCLR.replace(old, new), tmp_path)
    assert message in str(info.value) and str(tmp_path / "mini.toml") in str(info.value)


INIT_SEARCH = MINIMAL.replace('lr = { type = "log-float", low = 1e-4, high = 1e-2 }',
                              'init = { type = "categorical", choices = ["scratch", "byol", "file"] }') + """
[model.weights]
resnet18_2d = "weights/resnet18.pth"
[pretrain]
epochs = 2
"""


def test_init_search_picks_scratch_a_weights_file_or_an_ssl_method_per_point(tmp_path):
    spec = spec_from(INIT_SEARCH, tmp_path)
    assert [spec.init_of({"init": c}) for c in ("scratch", "byol", "file")] == ["scratch", "byol", "file"]
    assert spec.pretrain_settings({"init": "byol"})["method"] == "byol"
    assert spec.weights_file("resnet18_2d") == "weights/resnet18.pth"
    assert "init" not in spec.train_dict({"init": "byol"})  # the trial sets the weights, not the config
    with pytest.raises(ConfigError, match="needs model.weights.mobilenet_v2_2d"):
        spec.weights_file("mobilenet_v2_2d")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('"byol", "file"', '"byol", "imagenet"'), "search.init must be categorical with choices from ['scratch', 'file'"),
        (("[pretrain]\nepochs = 2\n", ""), "search.init chooses SSL methods: add a [pretrain] table"),
        (('resnet18_2d = "weights/resnet18.pth"', 'resnet_18 = "w.pth"'), "model.weights.resnet_18 must name a model family"),
        (('resnet18_2d = "weights/resnet18.pth"', ""), "search.init chooses \"file\": give model.weights for ['resnet18_2d']"),
        (("epochs = 2\n", 'epochs = 2\nmethod = "dino"\n'), "pretrain.method and search.init both choose the method"),
    ],
)
def test_bad_init_search_names_file_and_key(tmp_path, edit, message):
    old, new = edit
    assert old in INIT_SEARCH
    with pytest.raises(ConfigError) as info:
        spec_from(INIT_SEARCH.replace(old, new, 1), tmp_path)
    assert message in str(info.value) and str(tmp_path / "mini.toml") in str(info.value)


@pytest.mark.parametrize("name", ["ssl_sweep", "transfer_sweep", "geometry_sweep"])
def test_study_show_prints_the_new_founding_papers_studies_at_smoke_size(capsys, name):
    assert main(["study", "show", name, "--profile", "smoke"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    spec = load_study(name, "smoke")
    assert shown["search"] == spec.resolved["search"] and spec.sampler == "grid"
    assert len(spec.seeds) == 1 and spec.null_trials >= 1


def test_ssl_and_transfer_sweeps_search_the_initialisation_against_scratch():
    ssl = load_study("ssl_sweep", "paper")
    assert [(p.key, p.choices) for p in ssl.search] == [("init", ("scratch", "simclr", "byol", "dino", "moco_v3"))]
    assert [ssl.init_of({"init": c}) for c in ("scratch", "dino")] == ["scratch", "dino"]
    transfer = load_study("transfer_sweep", "paper")
    assert {p.key: p.choices for p in transfer.search} == {
        "model": ("mobilenet_v2_2d", "resnet101_2d"), "init": ("scratch", "file", "simclr")}
    assert transfer.weights_file("resnet101_2d").endswith(".pth")
    assert [p.choices for p in load_study("transfer_sweep", "smoke").search if p.key == "init"] == [("scratch", "simclr")]
    geometry = load_study("geometry_sweep", "paper")
    assert geometry.search[0].key == "model_params.branches" and geometry.data["view"] == "mesh"


@pytest.mark.parametrize(("family", "view", "message"), [
    ("geometry_gnn", "slices", "data.view: geometry_gnn needs the 'mesh' view"),
    ("resnet18_2d", "mesh", "data.view: resnet18_2d cannot read the 'mesh' view"),
])
def test_graph_families_and_the_mesh_view_go_together(tmp_path, family, view, message):
    text = MINIMAL.replace('family = "resnet18_2d"', f'family = "{family}"').replace('view = "slices"', f'view = "{view}"')
    with pytest.raises(ConfigError, match=message):
        spec_from(text, tmp_path)
