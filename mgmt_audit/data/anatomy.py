"""A real brain to build phantoms from: nilearn's bundled MNI152 templates (offline) as tissue maps.

:func:`load_atlas` turns the 2 mm MNI152 grey-matter, white-matter and brain-mask templates into
per-class probability maps (CSF, GM, WM, plus a synthetic subarachnoid CSF / skull / scalp shell so
the volumes have a head around the brain to crop), cropped to the head with a margin for jitter.
:func:`place_tumour` draws a glioblastoma-like lesion in the white matter and labels it with BraTS
labels; :func:`render` gives one MR contrast from the class maps and the lesion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

VOXEL_MM = 2.0
PAD_VOXELS = 12  # margin around the brain: room for the 12 mm head shell and the rigid jitter
TISSUES = ("csf", "gm", "wm", "bone", "scalp")
NECROTIC, OEDEMA, ENHANCING = 1, 2, 4  # BraTS labels

# Intensity of each class per contrast, on a common scale (T1w white matter ~0.86). Read from
# textbook appearance: T1 WM > GM > CSF; T2 CSF > GM > WM; FLAIR suppresses CSF, oedema brightest;
# the enhancing rim lights up after gadolinium on T1wCE; necrosis is fluid-like.
INTENSITY: dict[str, dict[str, float]] = {
    "FLAIR": dict(csf=0.15, gm=0.80, wm=0.60, bone=0.05, scalp=0.90, necrotic=0.55, enhancing=0.95, oedema=1.30),
    "T1w": dict(csf=0.30, gm=0.65, wm=0.86, bone=0.08, scalp=0.95, necrotic=0.30, enhancing=0.55, oedema=0.55),
    "T1wCE": dict(csf=0.30, gm=0.65, wm=0.86, bone=0.08, scalp=0.95, necrotic=0.30, enhancing=1.35, oedema=0.55),
    "T2w": dict(csf=1.40, gm=0.85, wm=0.60, bone=0.06, scalp=0.75, necrotic=1.30, enhancing=0.95, oedema=1.15),
}
LESION_CLASSES = {NECROTIC: "necrotic", OEDEMA: "oedema", ENHANCING: "enhancing"}


@dataclass(frozen=True)
class Atlas:
    """Tissue probability maps on one 2 mm RAS grid (``affine``), brain mask and tumour sites."""

    affine: np.ndarray  # (4, 4) voxel -> RAS mm, axis-aligned
    tissues: dict[str, np.ndarray]  # class name -> float32 probability map
    brain: np.ndarray  # bool
    sites: np.ndarray  # (k, 3) voxel indices deep in supratentorial white matter
    centre_mm: np.ndarray  # (3,) RAS centre of the brain (rotation centre for jitter)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.brain.shape


@lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """The MNI152 2 mm templates as tissue maps with a head shell (built once per process, a few seconds)."""
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=2)
    brain = mask_img.get_fdata() > 0.5
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata() * brain
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata() * brain
    # Pad every side, then cut the brain's bounding box widened by the padding.
    lo = np.argwhere(brain).min(0)
    box = tuple(slice(a, b + 2 * PAD_VOXELS + 1) for a, b in zip(lo, np.argwhere(brain).max(0)))
    brain, gm, wm = (np.pad(v, PAD_VOXELS)[box] for v in (brain, np.clip(gm, 0, 1), np.clip(wm, 0, 1)))
    affine = mask_img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ (lo - PAD_VOXELS)
    csf = np.clip(brain - gm - wm, 0, 1)

    # Head shell outside the brain: 0-3 mm subarachnoid CSF, 3-7 mm skull, 7-12 mm scalp.
    outside = ndimage.distance_transform_edt(~brain) * VOXEL_MM
    shells = {"csf": (0, 3), "bone": (3, 7), "scalp": (7, 12)}
    tissues = {"gm": gm, "wm": wm}
    for name, (a, b) in shells.items():
        layer = ndimage.gaussian_filter(((outside > a) & (outside <= b)).astype(np.float32), 0.7)
        tissues[name] = layer if name != "csf" else np.clip(csf + layer * ~brain, 0, 1)
    tissues = {k: tissues[k].astype(np.float32) for k in TISSUES}

    inside = ndimage.distance_transform_edt(brain) * VOXEL_MM
    world_z = affine[2, 2] * np.arange(brain.shape[2]) + affine[2, 3]
    supratentorial = (world_z > 0)[None, None, :]
    sites = np.argwhere((wm > 0.9) & (inside >= 20) & supratentorial)
    centre = (affine @ np.append(np.argwhere(brain).mean(0), 1))[:3]
    return Atlas(affine=affine, tissues=tissues, brain=brain, sites=sites, centre_mm=centre)


def place_tumour(
    atlas: Atlas, rng: np.random.Generator, *, size_scale: float = 1.0, max_size_scale: float = 1.0,
    lobes: np.ndarray | None = None, lobulation: float = 0.0,
) -> np.ndarray:
    """Draw a lesion in the white matter; return its BraTS label map (uint8) on the atlas grid.

    Enhancing-rim radius 12-18 mm (times ``size_scale``), necrotic core 45-65 % of it, oedema
    reaching 8-18 mm further, furthest along white matter; the outline is made irregular by a smooth
    random field. The random draws do not depend on ``size_scale`` (only on ``max_size_scale``, which
    bounds the box they are drawn on), so two calls that differ only in ``size_scale`` see the same
    randomness. ``lobulation`` > 0 bulges the whole lesion outwards around the unit vectors ``lobes``
    ``(k, 3)`` and in between, at equal volume (:func:`lobe_factor`); 0 leaves it as it was.
    """
    site = atlas.sites[rng.integers(len(atlas.sites))]
    voxel_centre = site + rng.uniform(-0.5, 0.5, 3)
    r_enh = rng.uniform(12.0, 18.0)
    core_fraction = rng.uniform(0.45, 0.65)
    extent = rng.uniform(8.0, 18.0)
    half = int(np.ceil((r_enh * max_size_scale + extent + 4) / VOXEL_MM))
    irregular = ndimage.gaussian_filter(rng.standard_normal((2 * half + 1,) * 3), 2.5)
    irregular /= irregular.std()

    r_enh *= size_scale
    r_core = r_enh * core_fraction
    lo = np.rint(voxel_centre).astype(int) - half
    start, stop = np.maximum(lo, 0), np.minimum(lo + 2 * half + 1, atlas.shape)
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    irregular = irregular[tuple(slice(a - o, b - o) for a, b, o in zip(start, stop, lo))]
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(start, stop)], indexing="ij"), -1)
    offset = (grid - voxel_centre) * VOXEL_MM
    distance = np.linalg.norm(offset, axis=-1) * (1 + 0.12 * irregular)
    if lobulation > 0:
        distance /= lobe_factor(offset, lobes, lobulation)
    wm = atlas.tissues["wm"][box]
    labels = np.zeros(distance.shape, np.uint8)
    labels[distance < r_enh + extent * (0.3 + 0.7 * wm)] = OEDEMA
    labels[distance < r_enh] = ENHANCING
    labels[distance < r_core] = NECROTIC
    labels[~atlas.brain[box]] = 0
    seg = np.zeros(atlas.shape, np.uint8)
    seg[box] = labels
    return seg


LOBE_WIDTH = 8.0  # von Mises-Fisher concentration of one lobe (angular radius about 20 degrees)


def lobe_factor(offset: np.ndarray, lobes: np.ndarray, amplitude: float) -> np.ndarray:
    """The radius factor of a lobulated outline in each direction of ``offset`` (..., 3) mm.

    ``f(u) = c (1 + amplitude g(u))`` with ``g`` the sum of von Mises-Fisher bumps
    ``exp(LOBE_WIDTH (u . v - 1))`` around the unit vectors ``lobes`` (k, 3), minus its mean over the
    sphere and scaled to a maximum of 1; ``c`` makes the mean of ``f^3`` over the sphere 1, so a
    star-shaped region ``|x| < r f(u)`` keeps the volume of the ball of radius ``r``. Raises
    ValueError for an amplitude that would turn a radius negative (>= 1 / max |g|).
    """
    sphere = _fibonacci_sphere(2000)
    bumps = np.exp(LOBE_WIDTH * (sphere @ lobes.T - 1.0)).sum(axis=1)
    mean, scale = bumps.mean(), np.abs(bumps - bumps.mean()).max()
    if amplitude * (mean / scale) >= 1:
        raise ValueError(f"lobulation amplitude {amplitude} would make a radius negative")
    c = np.mean((1 + amplitude * (bumps - mean) / scale) ** 3) ** (-1 / 3)
    norm = np.linalg.norm(offset, axis=-1, keepdims=True)
    unit = np.divide(offset, norm, out=np.zeros_like(offset), where=norm > 0)
    g = (np.exp(LOBE_WIDTH * (unit @ lobes.T - 1.0)).sum(axis=-1) - mean) / scale
    return c * (1 + amplitude * g)


def _fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (n, 3): the Fibonacci lattice."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5**0.5) * k
    radius = np.sqrt(1 - z * z)
    return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=1)


def render(atlas: Atlas, seg: np.ndarray, modality: str, lesion_boost: float = 0.0) -> np.ndarray:
    """Noise-free image of one contrast: class intensities mixed by probability, lesion on top.

    ``lesion_boost`` is added to the necrotic core and enhancing rim (the planted signal).
    """
    table = INTENSITY[modality]
    image = sum(atlas.tissues[name] * np.float32(table[name]) for name in TISSUES)
    for label, name in LESION_CLASSES.items():
        boost = lesion_boost if label in (NECROTIC, ENHANCING) else 0.0
        image[seg == label] = table[name] + boost
    return image.astype(np.float32)
