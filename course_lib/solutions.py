"""Worked solutions to the lessons' exercises, one plain function each, keyed by (lesson, name) in ``SOLUTIONS``.

The lessons never import this module directly: ``course_lib.notebook`` re-exports ``SOLUTIONS``, prints a solution's
source with ``nb.solution("02", "preactivation_std")`` and, in strict mode (CI, papermill), lets ``nb.exercise``
answer an exercise a student left undone. tests/test_notebook_helpers.py (and test_lesson06.py, ...) checks each
solution against the library, so solution and library cannot drift. A new exercise: write ``_sol_NN_name`` here,
register it in ``SOLUTIONS`` and test it (a test fails for any solution no test calls).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _sol_01_local_coord(hr_centres, lr_n):
    """Lesson 01: local coordinate of HR centres (1D) relative to the nearest of lr_n LR pixels."""
    index = torch.floor((hr_centres + 1) / 2 * lr_n).clamp(0, lr_n - 1)  # the LR pixel containing the centre
    lr_centre = -1 + (2 * index + 1) / lr_n
    return (hr_centres - lr_centre) * lr_n  # the LR pixel's edges land on -1 and +1


def _sol_01_nearest_index(n_lr, n_hr):
    """Lesson 01: for each of n_hr HR pixels, the LR pixel whose square contains its centre."""
    i = torch.arange(n_hr)
    return torch.div((2 * i + 1) * n_lr, 2 * n_hr, rounding_mode="floor")


def _sol_02_positional_encoding(v, num_frequencies):
    """Lesson 02: [v, sin(2^0 pi v), cos(2^0 pi v), ..., sin(2^(L-1) pi v), cos(2^(L-1) pi v)]."""
    parts = [v]
    for k in range(num_frequencies):
        parts += [torch.sin(2**k * math.pi * v), torch.cos(2**k * math.pi * v)]
    return torch.cat(parts, dim=-1)


def _sol_02_preactivation_std(fan_in, w0, c):
    """Lesson 02: std of w0 * (W x) for W ~ U(-c, c) and fan_in inputs x of variance 1/2 (arcsine on [-1, 1]).

    Each of the fan_in products W_j x_j has variance E[W^2] E[x^2] = (c^2 / 3) (1 / 2); they are independent, so
    the sum has variance fan_in c^2 / 6, and multiplying by w0 multiplies the std by w0."""
    return w0 * c * math.sqrt(fan_in / 6)


def _sol_03_unfold3x3(feat):
    """Lesson 03: 3x3 unfolding with zero padding, channel c*9 + (ky*3 + kx)."""
    b, c, h, w = feat.shape
    padded = torch.nn.functional.pad(feat, (1, 1, 1, 1))
    out = torch.empty(b, c, 9, h, w, dtype=feat.dtype)
    for ky in range(3):
        for kx in range(3):
            out[:, :, ky * 3 + kx] = padded[:, :, ky : ky + h, kx : kx + w]
    return out.reshape(b, c * 9, h, w)


def _sol_03_query_nearest(feat, coord):
    """Lesson 03: nearest LR feature of query coordinates (B, Q, 2) -> (B, Q, C)."""
    b, c, h, w = feat.shape
    row = torch.floor((coord[..., 0] + 1) / 2 * h).long().clamp(0, h - 1)
    col = torch.floor((coord[..., 1] + 1) / 2 * w).long().clamp(0, w - 1)
    batch = torch.arange(b)[:, None]
    return feat.permute(0, 2, 3, 1)[batch, row, col]  # (B, Q, C)


def _sol_04_first_layer(z, p, k0, q0):
    """Lesson 04: eqs. 2-3, s0 = ReLU(k0(z)) * sin(q0(p)) for (Q, .) inputs and nn.Linear layers k0, q0."""
    m0 = torch.relu(k0(z))
    return m0 * torch.sin(q0(p))


def _sol_04_decoder_params(z_dim, p_dim, hidden, layers, variant):
    """Lesson 04: parameter count of the modulated periodic decoder (Table 5 variants a-f)."""
    linear = lambda n_in, n_out: n_in * n_out + n_out  # weights + biases
    mi_in = {"a": hidden, "b": hidden, "c": hidden + z_dim, "d": hidden + z_dim, "e": hidden + z_dim,
             "f": hidden + z_dim}[variant]
    init_p = variant in ("a", "c", "e")  # eqs. 8-9: p <- sin(W p + b) with z's width, then z <- p * z
    total = linear(p_dim, z_dim) if init_p else 0
    total += linear(z_dim, hidden) + linear(z_dim if init_p else p_dim, hidden)  # K0 and Q0
    total += (layers - 1) * (linear(mi_in, hidden) + linear(hidden, hidden))  # K_i and Q_i
    return total + linear(hidden, 3)  # the output layer


def _sol_04_k_as_conv(k_weight, channels):
    """Lesson 04: a (width, 9C) weight acting on unfolded z as a (width, C, 3, 3) kernel of a 3x3 convolution.

    z's channel c*9 + (ky*3 + kx) is feature c at offset (ky, kx): exactly conv2d's (out, in, ky, kx) layout."""
    return k_weight.reshape(k_weight.shape[0], channels, 3, 3)


def _sol_00_psnr(sr, hr):
    """Lesson 00: PSNR in dB of images in [0, 1]: 10 log10(1 / MSE)."""
    mse = torch.mean((sr.double() - hr.double()) ** 2)
    return 10 * torch.log10(1 / mse)


def _sol_00_rgb_to_y(img):
    """Lesson 00: BT.601 luma Y on 0..255 of a (B, 3, H, W) image on 0..255, rounded as MATLAB does."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    return torch.floor(y + 0.5).clamp(0, 255)  # round half up, as MATLAB rounds these positive values


def _sol_07_checkerboard_psnr(mse, amplitude):
    """Lesson 07: PSNR (dB, range 1) after adding a +-amplitude/255 checkerboard (no clamping) to an SR image.

    The new error is e + c with c = +-a/255 at every pixel: mean((e + c)^2) = mse + 2 mean(e c) + (a/255)^2. The
    checkerboard flips sign from pixel to pixel, so mean(e c) is about 0 for any error without that pattern."""
    return -10 * math.log10(mse + (amplitude / 255) ** 2)


def _sol_07_images_needed(sd, gap):
    """Lesson 07: images k so that a 95 % normal interval of a mean paired difference is +- gap at most.

    The mean of k differences with standard deviation sd has standard error sd / sqrt(k); 1.96 sd / sqrt(k) <= gap
    gives k >= (1.96 sd / gap)^2 (1.96 = the 97.5 % normal quantile)."""
    z = 1.959963984540054  # statistics.NormalDist().inv_cdf(0.975)
    return max(1, math.ceil((z * sd / gap) ** 2 - 1e-9))


def _sol_05_edsr_params(n_resblocks, n_feats):
    """Lesson 05: parameters of EDSR without upsampler: head 3 -> C, n_resblocks blocks of two C -> C convolutions,
    the body's tail C -> C, all 3x3. A k x k convolution from c_in to c_out: c_in c_out k^2 weights, c_out biases."""
    def conv(c_in, c_out):
        return c_in * c_out * 9 + c_out

    return conv(3, n_feats) + 2 * n_resblocks * conv(n_feats, n_feats) + conv(n_feats, n_feats)


def _sol_05_receptive_field(kind, n_blocks, n_layers):
    """Lesson 05: receptive field side (LR pixels) of "edsr" or "rdn": 1 + 2 x (3x3 convolutions on the longest path).

    EDSR: the head, two per residual block, the body's tail. RDN: SFE1, SFE2, n_layers chained dense layers per block
    (each reads every earlier one; the 1x1 fusion widens nothing) and GFF's 3x3 after its 1x1. Skips are shorter."""
    chain = 2 + 2 * n_blocks if kind == "edsr" else 3 + n_blocks * n_layers
    return 1 + 2 * chain


def _sol_05_encoder_share(enc_macs, dec_macs, scale):
    """Lesson 05: share of an x scale upscale's multiply-adds spent in the encoder (the decoder's reference path).

    Per LR pixel the encoder costs enc_macs once; the decoder runs once per HR pixel, scale^2 of them per LR pixel."""
    return enc_macs / (enc_macs + scale**2 * dec_macs)


def _sol_06_pixels_per_step(patch, batch, scales, sample_q):
    """Lesson 06: HR pixels scored in one step, [the authors' recipe, LIIF's recipe].

    Authors': every image gives one round(patch * s) square crop per scale and every pixel of it is scored. LIIF's:
    one crop per image, whatever its scale, and only sample_q of its pixels are scored."""
    authors = batch * sum(round(patch * s) ** 2 for s in scales)
    return [authors, batch * sample_q]


def _sol_06_learning_rate(k, lr, max_steps, warmup_steps, schedule, milestones, gamma):
    """Lesson 06: the learning rate after k completed steps (the rate of step k + 1).

    Warm-up: min(1, (k + 1) / W). Step: gamma to the number of milestones round(m * max_steps) that k has reached.
    Cosine: 0.5 (1 + cos(pi t)), t = (k - W) / (max_steps - W) clipped to [0, 1]."""
    warm = min(1.0, (k + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "cosine":
        t = min(1.0, max(0.0, (k - warmup_steps) / max(1, max_steps - warmup_steps)))
        return lr * warm * 0.5 * (1 + math.cos(math.pi * t))
    passed = sum(k >= round(m * max_steps) for m in milestones)
    return lr * warm * gamma**passed


def _sol_06_plan_steps(rate, seconds, val_seconds, val_every):
    """Lesson 06: steps n that fit a time budget: n / rate + val_seconds (1 + n / val_every) = 0.97 seconds.

    Solve for n: the usable time, less the final validation, divided by the time per step (the step itself plus
    its share of the periodic validations); round down, never below 0."""
    usable = (1 - 0.03) * seconds - val_seconds  # 3 % of the time is kept for saving
    per_step = 1 / rate + (val_seconds / val_every if val_every else 0.0)
    return max(0, int(usable / per_step))


def _sol_08_design_costs(z_dim, p_dim, width, depth):
    """Lesson 08: parameters of Table 5's three design choices: [z skips (d) - (b), positional init (e) - (f),
    s instead of m (f) - (d)]. A linear layer from n to k values has n k + k parameters.

    z skips: each of the depth - 1 later modulation layers K_i reads [x z] instead of x, z_dim more inputs, so
    z_dim * width more weights (no more biases). Positional init: the layer p <- sin(P p + b) from p_dim to z_dim
    (eq. 8), and Q_0 then reads z_dim values instead of p_dim. s instead of m: s_(i-1) is as wide as m_(i-1)."""
    skips = (depth - 1) * z_dim * width
    pos_init = (p_dim * z_dim + z_dim) + (z_dim - p_dim) * width
    return [skips, pos_init, 0]


def _sol_08_seed_spread(per_seed):
    """Lesson 08: [mean PSNR over images and seeds, seed spread] of one row, from its per-image PSNRs (one array per
    seed, the same images). Each seed's mean over the images; the row's PSNR is the mean of those; the seed spread is
    the largest minus the smallest."""
    means = [float(np.mean(scores)) for scores in per_seed]
    return [float(np.mean(means)), max(means) - min(means)]


def _sol_08_is_finding(diff, low, high, seed_spread):
    """Lesson 08: a difference is a finding when its interval excludes 0 (other test images would not undo it) and it
    is larger in size than the spread between seeds (retraining would not undo it either)."""
    return bool((low > 0 or high < 0) and abs(diff) > seed_spread)


def _sol_09_ensemble_weights(coord, lr_size):
    """Lesson 09: LIIF's four ensemble weights (4, B, Q) for queries ``coord`` (B, Q, 2) on an (h, w) LR grid.

    For each shift (row, col) in (-1, -1), (-1, 1), (1, -1), (1, 1): move the query half an LR pixel (1/h, 1/w) that
    way plus 1e-6, clamp it into [-1 + 1e-6, 1 - 1e-6], take the centre of the LR pixel it lands in and
    rel = (query - centre) * (h, w). The area |rel_row * rel_col| + 1e-9 is the rectangle between the query and that
    centre; each prediction is weighted by the area of the diagonally opposite shift (0<->3, 1<->2), over the total."""
    h, w = lr_size
    c = coord.double()
    areas = []
    for v_row, v_col in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        rel = []
        for axis, n, v in ((0, h, v_row), (1, w, v_col)):
            s = (c[..., axis] + v / n + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
            index = torch.floor((s + 1) * n / 2).clamp(0, n - 1)  # the LR pixel holding s
            rel.append((c[..., axis] - (-1 + (2 * index + 1) / n)) * n)
        areas.append((rel[0] * rel[1]).abs() + 1e-9)
    areas = torch.stack(areas)
    return areas.flip(0) / areas.sum(0)


def _sol_09_query_macs(c, width, depth):
    """Lesson 09: multiply-adds per query on the reference path of [DIINN (f), LIIF, Meta-SR], for C encoder channels
    (z has 9C values), hidden ``width`` and ``depth`` (DIINN: layers per branch; LIIF: hidden layers; Meta-SR: always
    one hidden layer). A linear layer from n to k values costs n k multiply-adds.

    DIINN: K_0 (9C -> W), K_1.. ([s z] -> W), Q_0 (3 -> W), Q_1.. (W -> W), output (W -> 3). LIIF: four shifted
    queries, each an MLP 9C + 4 -> W -> ... -> 3. Meta-SR: Pos2Weight 3 -> W -> 9C * 3, then the 9C x 3 kernel
    times z."""
    z = 9 * c
    diinn = z * width + (depth - 1) * (width + z) * width + 3 * width + (depth - 1) * width * width + width * 3
    liif = 4 * ((z + 4) * width + (depth - 1) * width * width + width * 3)
    metasr = 3 * width + width * z * 3 + z * 3
    return [diinn, liif, metasr]


def _sol_09_time_line(pixels, ms):
    """Lesson 09: the least-squares line ms = fixed + per_pixel * pixels through timing points: [fixed, per_pixel].

    per_pixel = cov(pixels, ms) / var(pixels); the line passes through the means."""
    x, y = np.asarray(pixels, dtype=float), np.asarray(ms, dtype=float)
    per_pixel = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return [float(y.mean() - per_pixel * x.mean()), per_pixel]


def _sol_10_decoder_params(c, width, depth, kernel, modulation):
    """Lesson 10: parameters of seed 000's variant decoder (models A-F and H) for C encoder channels (z: 9C values).

    A k x k convolution from n to m channels has n m k^2 weights and m biases. K_0 reads z (9C channels), K_i
    [q_(i-1) z] (width + 9C); Q_0 reads p (3), Q_i q_(i-1) (width); all with k x k kernels. With modulation, each M_i
    is a 1x1 convolution width -> width. The output is a 1x1 convolution width -> 3."""
    def conv(n, m, k):
        return n * m * k * k + m

    z = 9 * c
    total = conv(z, width, kernel) + (depth - 1) * conv(width + z, width, kernel)  # K
    total += conv(3, width, kernel) + (depth - 1) * conv(width, width, kernel)  # Q
    if modulation:
        total += depth * conv(width, width, 1)  # M
    return total + conv(width, 3, 1)


def _sol_10_seam_columns(width, strip_width, radius):
    """Lesson 10: which of ``width`` output columns (bool tensor) differ between the whole image and column strips of
    ``strip_width`` columns computed alone with zero padding (the authors' evaluation), for a decoder that reads
    ``radius`` columns on each side.

    In strip [c0, c1), column c needs column c0 - 1 when c - c0 + 1 <= radius, and column c1 when c1 - c <= radius;
    the strip has zeros there, the whole image has pixels, unless that side is the image's own edge (c0 = 0 or
    c1 = width), where the whole image is zero-padded too."""
    out = torch.zeros(width, dtype=torch.bool)
    for c0 in range(0, width, strip_width):
        c1 = min(c0 + strip_width, width)
        for c in range(c0, c1):
            out[c] = (c0 > 0 and c - c0 < radius) or (c1 < width and c1 - 1 - c < radius)
    return out


def _sol_10_upscale_progressive(model, lr, sizes, round_uint8):
    """Lesson 10: upscale ``lr`` through the stage sizes [(H1, W1), ...], each stage's output (clamped to [0, 1])
    the next stage's input; between stages (not after the last) rounded to the 256 levels k/255 when
    ``round_uint8``, as saving an 8-bit file would. Returns the last stage's output."""
    x = lr
    for k, size in enumerate(sizes):
        y = model.upscale(x, size=tuple(size)).clamp(0, 1)
        x = (y * 255).round() / 255 if round_uint8 and k < len(sizes) - 1 else y
    return y


def _sol_11_memnet_conv_params(blocks, recursions, channels=64):
    """Lesson 11: MemNet's convolution parameters (weights + biases), each shared convolution counted once."""
    c, M, R = channels, blocks, recursions

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    gates = sum(conv((m + R) * c, c, 1) for m in range(1, M + 1))  # block m's gate reads (m + R) x c channels
    return conv(1, c, 3) + M * 2 * conv(c, c, 3) + gates + conv(c, 1, 3)  # first conv, shared pairs, gates, Rec


def _sol_11_memnet_macs(blocks, recursions, multi_supervised=True, channels=64):
    """Lesson 11: MemNet's multiply-adds per output pixel: every shared convolution computed R times."""
    c, M, R = channels, blocks, recursions
    gates = sum((m + R) * c * c for m in range(1, M + 1))
    reconstructions = M if multi_supervised else 1  # one shared Rec conv, applied to every B_m
    return 9 * c + M * R * 2 * 9 * c * c + gates + reconstructions * 9 * c


def _sol_11_blend_penalty_db(a):
    """Lesson 11: PSNR lost by the guess mean + a * (a plausible sample's detail) against the mean alone: the error
    is the true detail minus a independent detail of the same variance, so the MSE grows by (1 + a^2)."""
    return 10 * math.log10(1 + a * a)


SOLUTIONS = {
    ("00", "psnr"): _sol_00_psnr,
    ("00", "rgb_to_y"): _sol_00_rgb_to_y,
    ("01", "nearest_index"): _sol_01_nearest_index,
    ("01", "local_coord"): _sol_01_local_coord,
    ("02", "positional_encoding"): _sol_02_positional_encoding,
    ("02", "preactivation_std"): _sol_02_preactivation_std,
    ("03", "unfold3x3"): _sol_03_unfold3x3,
    ("03", "query_nearest"): _sol_03_query_nearest,
    ("04", "first_layer"): _sol_04_first_layer,
    ("04", "decoder_params"): _sol_04_decoder_params,
    ("04", "k_as_conv"): _sol_04_k_as_conv,
    ("05", "edsr_params"): _sol_05_edsr_params,
    ("05", "receptive_field"): _sol_05_receptive_field,
    ("05", "encoder_share"): _sol_05_encoder_share,
    ("06", "pixels_per_step"): _sol_06_pixels_per_step,
    ("06", "learning_rate"): _sol_06_learning_rate,
    ("06", "plan_steps"): _sol_06_plan_steps,
    ("07", "checkerboard_psnr"): _sol_07_checkerboard_psnr,
    ("07", "images_needed"): _sol_07_images_needed,
    ("08", "design_costs"): _sol_08_design_costs,
    ("08", "seed_spread"): _sol_08_seed_spread,
    ("08", "is_finding"): _sol_08_is_finding,
    ("09", "ensemble_weights"): _sol_09_ensemble_weights,
    ("09", "query_macs"): _sol_09_query_macs,
    ("09", "time_line"): _sol_09_time_line,
    ("10", "decoder_params"): _sol_10_decoder_params,
    ("10", "seam_columns"): _sol_10_seam_columns,
    ("10", "upscale_progressive"): _sol_10_upscale_progressive,
    ("11", "memnet_conv_params"): _sol_11_memnet_conv_params,
    ("11", "memnet_macs"): _sol_11_memnet_macs,
    ("11", "blend_penalty_db"): _sol_11_blend_penalty_db,
}
