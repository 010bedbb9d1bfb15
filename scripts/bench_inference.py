"""The baseline of `visionlog bench inference`: the same TorchScript detector on the same photos,
run by Python PyTorch with the same steps as visionlog's worker (scale to 256x192 by area,
forward, 3x3 peaks on the best class, boxes from size and offset). Prints one JSON object:
images/s per batch size. With --recognizer, also the same TorchScript crop recognizer on the
same boxes with the worker's steps (each crop scaled to 32x32 by area, forward, softmax, best
class): crops/s per crop batch size, under "recognizer".

    python scripts/bench_inference.py --model detector.pt --images photos.u8 --count 64 \
        --height 480 --width 640 --batches 1,8,32 --threads 2 --seconds 3
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

STRIDE = 8
SIZE_UNIT = 16.0


def detect(model, photos, classes, threshold=0.3, max_boxes=300):
    """photos: [n, h, w, 3] uint8 -> a list of (boxes [k, 4], scores [k], classes [k]) per photo."""
    n, h, w, _ = photos.shape
    x = photos.permute(0, 3, 1, 2).float()
    x = F.adaptive_avg_pool2d(x, (192, 256)).round() / 255.0 - 0.5
    sx, sy = w / 256.0, h / 192.0
    with torch.no_grad():
        out = model(x)
    heat = out[:, :classes].sigmoid()
    best, best_class = heat.max(dim=1)
    peak = F.max_pool2d(best.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    keep = (best == peak) & (best > threshold)
    results = []
    for i in range(n):
        ys, xs = keep[i].nonzero(as_tuple=True)
        scores = best[i, ys, xs]
        reg = out[i, classes:, ys, xs]
        bw = reg[0].clamp(-4, 4).exp() * SIZE_UNIT * sx
        bh = reg[1].clamp(-4, 4).exp() * SIZE_UNIT * sy
        cx = (xs.float() + reg[2].clamp(0, 1)) * STRIDE * sx
        cy = (ys.float() + reg[3].clamp(0, 1)) * STRIDE * sy
        boxes = torch.stack([(cx - bw / 2).clamp(0, w - 1), (cy - bh / 2).clamp(0, h - 1), bw, bh], dim=1)
        order = scores.argsort(descending=True)[:max_boxes]
        results.append((boxes[order], scores[order], best_class[i, ys, xs][order]))
    return results


def recognize(model, photos, boxes):
    """boxes: [(photo, x0, y0, x1, y1)] whole pixels -> (class index, probability) per box."""
    crops = [
        F.adaptive_avg_pool2d(photos[i, y0:y1, x0:x1].permute(2, 0, 1).float().unsqueeze(0), (32, 32)).round()
        for i, x0, y0, x1, y1 in boxes
    ]
    x = torch.cat(crops) / 255.0 - 0.5
    with torch.no_grad():
        p, i = model(x).softmax(-1).max(dim=1)
    return i, p


def timed(seconds, count, batch, run):
    """Items/s of `run` over `count` items in slices of `batch`, after one warm-up slice."""
    run(0, batch)
    items, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for i in range(0, count - batch + 1, batch):
            run(i, i + batch)
            items += batch
    return items / (time.perf_counter() - started)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--recognizer")
    p.add_argument("--boxes", help="JSON [[photo, x0, y0, x1, y1], ...] for --recognizer")
    p.add_argument("--crop-batches", default="1,8,32,128")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    raw = open(a.images, "rb").read()
    photos = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(a.count, a.height, a.width, 3)
    model = torch.jit.load(a.model)
    model.eval()
    found = sum(len(r[0]) for r in detect(model, photos[:8], a.classes))
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "boxes_on_8": found}
    for b in [int(s) for s in a.batches.split(",")]:
        result[str(b)] = timed(a.seconds, a.count, b, lambda i, j: detect(model, photos[i:j], a.classes))
    if a.recognizer:
        rec = torch.jit.load(a.recognizer)
        rec.eval()
        boxes = json.load(open(a.boxes))
        result["recognizer"] = {
            str(b): timed(a.seconds, len(boxes), b, lambda i, j: recognize(rec, photos, boxes[i:j]))
            for b in [int(s) for s in a.crop_batches.split(",")]
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
