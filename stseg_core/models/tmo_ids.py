"""`tmo`'s own step after the network: TMO segments one foreground; `ForegroundSplitter` splits it into the
first frame's MOSE object ids (see `tmo` for the network and the adapter that calls it).

From one foreground to K ids (`ForegroundSplitter`, frame t ≥ 1, all at frame size H×W):
  1. fg = P ≥ threshold, P = TMO's foreground probability (softmax of the 2-class scores, class 1).
  2. Seeds: the previous label map splatted forward along the flow t−1→t (each labelled pixel p lands on
     round(p + F(p))), kept only inside fg.
  3. Each connected region of fg that holds seeds: every unclaimed pixel takes the id of its nearest seed.
  4. A region with no seed (an object that reappears, or one the warp lost) and at least `min_region` of
     the frame: the first-frame anchors decide — each object's prototype is its mean feature over its
     first-frame mask (cosine-normalised), the feature being TMO's last decoder map y4 (256 channels at
     stride 4, the input of the 2-class predictor, of the AOS branch kept); the region goes to the object
     whose prototype is most similar to the region's features on average. Smaller seedless regions are
     dropped as clutter.
Confidence: score(k) = mean P over the pixels labelled k (0 when absent); present(k) = k has ≥ 1 pixel.
Soft output: probs(k) = P inside the Voronoi cell of k's pixels (each pixel's nearest labelled pixel).
"""

from __future__ import annotations

import numpy as np


def _splat(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Forward-warp a label map along the flow t−1→t: each labelled pixel p lands on round(p + F(p)).

    Forward flow is defined on frame t−1's grid, so splatting uses it where it is measured (a backward warp
    would read it at frame t's positions, wrong wherever an object moved more than its own width). Where
    two objects land on one pixel the smaller id's write is overwritten (occlusion order is unknown).
    """
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    tx = np.rint(xs + flow[ys, xs, 0]).astype(np.int64)
    ty = np.rint(ys + flow[ys, xs, 1]).astype(np.int64)
    keep = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    out = np.zeros_like(labels)
    out[ty[keep], tx[keep]] = labels[ys[keep], xs[keep]]
    return out


class ForegroundSplitter:
    """Owns the object-id rules of one video: ids only ever come from the first frame (see module docstring).

    Shapes: labels H×W uint8; prob H×W float32 in [0, 1]; flow H×W×2 float32 (t−1→t, pixels); feat D×h×w
    float32 (decoder features at any resolution, compared by cosine similarity).
    """

    def __init__(
        self,
        first_labels: np.ndarray,
        object_ids: tuple[int, ...],
        first_feat: np.ndarray,
        threshold: float = 0.5,
        min_region: float = 0.001,
    ) -> None:
        self.ids = tuple(int(i) for i in object_ids)
        self.threshold = float(threshold)
        self.min_region = float(min_region)
        self.prev = first_labels
        self.prototypes = self._prototypes(first_labels, first_feat)

    def _prototypes(self, labels: np.ndarray, feat: np.ndarray) -> np.ndarray:
        """K×D unit vectors: mean feature of each object's first-frame mask (area-weighted at feature size)."""
        import cv2

        d, h, w = feat.shape
        protos = np.zeros((len(self.ids), d), np.float32)
        flat = feat.reshape(d, -1)
        for k, oid in enumerate(self.ids):
            weight = cv2.resize((labels == oid).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA).ravel()
            if weight.sum() > 0:
                protos[k] = flat @ weight / weight.sum()
        unit: np.ndarray = protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-6)
        return unit

    def step(
        self, prob: np.ndarray, flow: np.ndarray, feat: np.ndarray
    ) -> tuple[np.ndarray, dict[int, float], dict[int, bool], np.ndarray]:
        """One frame → (labels H×W uint8, scores, present, probs K×H×W uint8)."""
        import cv2
        from scipy import ndimage

        h, w = prob.shape
        fg = prob >= self.threshold
        seeds = np.where(fg, _splat(self.prev, flow), 0).astype(np.uint8)
        labels = np.zeros((h, w), np.uint8)
        n_regions, regions = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        if n_regions > 1:
            seeded = np.zeros(n_regions, bool)
            seeded[np.unique(regions[seeds > 0])] = True
            seeded[0] = False
            if seeds.any():
                _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
                nearest = seeds[iy, ix]
                take = seeded[regions]
                labels[take] = nearest[take]
            self._anchor_regions(labels, regions, n_regions, seeded, feat)
        present = {oid: bool((labels == oid).any()) for oid in self.ids}
        scores = {oid: float(prob[labels == oid].mean()) if present[oid] else 0.0 for oid in self.ids}
        self.prev = labels
        return labels, scores, present, self._soft(prob, labels)

    def _anchor_regions(
        self, labels: np.ndarray, regions: np.ndarray, n_regions: int, seeded: np.ndarray, feat: np.ndarray
    ) -> None:
        """Give each large seedless region to the object whose first-frame prototype it resembles most."""
        import cv2

        h, w = labels.shape
        areas = np.bincount(regions.ravel(), minlength=n_regions)
        todo = [r for r in range(1, n_regions) if not seeded[r] and areas[r] >= self.min_region * h * w]
        if not todo:
            return
        d, fh, fw = feat.shape
        unit = feat.reshape(d, -1)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=0, keepdims=True), 1e-6)
        sims = (self.prototypes @ unit).reshape(len(self.ids), fh, fw)
        for r in todo:
            inside = regions == r
            mean_sim = [float(cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR)[inside].mean()) for s in sims]
            labels[inside] = self.ids[int(np.argmax(mean_sim))]

    def _soft(self, prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """K×H×W uint8: P × [pixel's nearest labelled pixel belongs to k]."""
        from scipy import ndimage

        out = np.zeros((len(self.ids), *labels.shape), np.uint8)
        if not labels.any():
            return out
        _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        owner = labels[iy, ix]
        p255 = np.round(prob * 255.0).astype(np.uint8)
        for k, oid in enumerate(self.ids):
            out[k] = np.where(owner == oid, p255, 0)
        return out
