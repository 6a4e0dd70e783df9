"""The synthetic data generator: labelled scenes (and the tiles cut from them) from nothing but logo files.

Modules, in the order the data flows:
- compose: backgrounds that are ours to use (scikit-image's photos, procedural textures), alpha pasting;
- scenes: one scene (SceneConfig, render_scene): logos transformed as in photos, distractors, exact boxes;
- synthesize: `detect synth` (SynthConfig, synthesize): many scenes on disk as a box dataset, plus tiles;
- demo_logo: the project's own mark, the brand every offline example uses.

Example:
    >>> from detector.synth import SceneConfig, SynthConfig, synthesize
    >>> cfg = SynthConfig(out="synth-out", scenes=50, scene=SceneConfig(width=320, height=240))
    >>> res = synthesize(cfg)  # doctest: +SKIP
"""

from detector.synth.compose import alpha_paste, builtin_backgrounds, procedural_background
from detector.synth.demo_logo import DEMO_LOGO_NAME, demo_logo
from detector.synth.scenes import VISIBLE_ALPHA, Scene, SceneConfig, render_scene, scene_rng, trim_alpha
from detector.synth.synthesize import SynthConfig, SynthResult, load_logos, logo_name, synthesize

__all__ = [
    "DEMO_LOGO_NAME",
    "VISIBLE_ALPHA",
    "Scene",
    "SceneConfig",
    "SynthConfig",
    "SynthResult",
    "alpha_paste",
    "builtin_backgrounds",
    "demo_logo",
    "load_logos",
    "logo_name",
    "procedural_background",
    "render_scene",
    "scene_rng",
    "synthesize",
    "trim_alpha",
]
