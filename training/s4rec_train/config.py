"""The settings of a training run as plain, validated dataclasses: the model, S4Rec's objectives, the loop.

They live apart from the modules that use them (``model``, ``objectives``, ``train``, which re-export them)
because this module imports no torch: ``s4rec-train --help`` shows these defaults, and must work, and stay
fast, on a machine without torch. Each default carries the reason it was chosen; the checkpoint stores
``ModelConfig`` (``config``) and the other two (``training.settings``, ``training.objectives``) as dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The choices of TrainConfig's string settings (also the command line's).
BATCHING = ("auto", "tokens", "users", "random")  # see s4rec_train.batching.batch_order and resolve_batching
# auto: softmax up to s4rec_train.sampled.SAMPLED_ABOVE items, sampled above (measured there)
LOSSES = ("auto", "softmax", "sampled", "bce")
LR_SCHEDULES = ("constant", "linear")
SAMPLERS = ("uniform", "popularity", "mixed")  # where sampled softmax draws its shared negatives from
DEVICES = ("auto", "cpu", "cuda")
SIDE_VECTORS = ("last", "mean")  # ObjectiveConfig.side_vector
INTENT_SOURCES = ("p", "q")  # ObjectiveConfig.intent_from
SPLITS = ("loo", "time")  # leave-one-out, global temporal (s4rec_train.splits)
NEW_ITEM_INITS = ("cooccur", "mean", "normal")  # a warm start's rows of new items (s4rec_train.warmstart)
# TrainConfig settings that say where a run executes, not what it computes: a warm start takes them from the
# command line, never from the old run, and a resumed run may change them.
MACHINE_SETTINGS = ("device", "threads")


@dataclass
class ModelConfig:
    """The SASRec encoder's shape (:class:`~s4rec_train.model.SASRec`); the checkpoint's ``config``."""

    num_items: int  # N; item indices are 1..N and 0 is padding
    max_len: int = 50  # history window; Beauty/Toys users average ~9 items, 50 covers >99% of them
    dim: int = 64  # d in the paper and docs/s4rec.md; the paper's setting
    layers: int = 2  # transformer blocks; the paper searches 1-3
    heads: int = 2  # attention heads (dim must divide by it)
    dropout: float = 0.5  # hidden and attention dropout; high because the data are sparse
    layer_norm_eps: float = 1e-12  # the SASRec/ICLRec code lineage's value

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {self.num_items}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; this s4rec knows {sorted(known)}")
        return cls(**values)


# Experiments removed after they measured no better (benchmarks/RESULTS.md section 6; the code last existed at
# commit e21a317), with the value that meant "off". Checkpoints trained before still list them in
# ``training.objectives``, so :meth:`ObjectiveConfig.from_dict` accepts them there at that value.
REMOVED_OPTIONS = {"adversary_queue": 0, "adversary_batch": 0}

# Options added after checkpoints were first written, with the value the code had before each existed. A stored
# ``training.objectives`` without one was trained that way, whatever today's default is
# (:meth:`ObjectiveConfig.from_stored`): warmup (f1e34aa), cooldown (ca51070), the issue-22 switches (add90ee).
ADDED_OPTIONS = {
    "warmup": 0.0,
    "cooldown": 0.0,
    "side_vector": "last",
    "intent_from": "p",
    "unit_prototypes": False,
    "detach_teacher": True,
}


@dataclass
class ObjectiveConfig:
    """Weights, temperatures and augmentation ratios of S4Rec's auxiliary losses (eq. 14).

    A weight of 0 turns its term off and skips its computation; all four at 0 is the plain backbone.
    """

    cluster_weight: float = 0.01  # alpha of L_Clust; the paper's best value on Beauty
    contrastive_weight: float = 0.1  # beta1 of L_SCL; the paper's best value on Beauty
    distill_weight: float = 0.1  # beta2 of L_CKD; the paper's best value on Beauty
    # lambda of L_Adv, the paper's 1.0. The defaults below marked "paper's configuration" were chosen together,
    # by validation NDCG@20 under the full softmax (benchmarks/RESULTS.md section 15: Beauty, 3 seeds, the
    # default schedule and a 50-epoch one); each one alone did not help under BCE (section 9), and with the
    # project's earlier milder settings the adversary never beat its absence (sections 3 and 6).
    # It costs a side pass per step (an epoch 1.11x the earlier default's). --adversary-weight 0 turns it off.
    adversary_weight: float = 1.0
    num_intents: int = 128  # K prototypes; the paper's best on Beauty (32-128 are within 2% HR@5)
    cluster_temperature: float = 0.1  # tau1 of the soft assignment p; SwAV's value
    sinkhorn_epsilon: float = 0.05  # entropy regularisation of the Sinkhorn targets; SwAV's value
    sinkhorn_iterations: int = 3  # SwAV's value; enough for a usable equal partition
    # tau2 from the paper's grid {0.1, 1.0}: 0.1 by validation (Beauty, 8 epochs, valid NDCG@20 0.0556 vs 0.0495;
    # at 1.0 the loss stays near log(negatives) and barely trains), benchmarks/RESULTS.md section 4
    contrastive_temperature: float = 0.1
    # tau3 from the paper's grid {0.1, 1.0}: 0.1 by validation (6 epochs, 0.0439 vs 0.0418 with 1.0)
    distill_temperature: float = 0.1
    # Which view feeds the Sinkhorn targets: "original" = q of the un-augmented history supervises p of both
    # views (that history's vector is free: the next-item pass already computes it); "swapped" = SwAV's
    # swapped prediction between the two views. Level on Beauty validation after 5 epochs (NDCG@20 0.0297
    # vs 0.0296, docs/s4rec.md); "original" kept as the reading closer to the paper's h(u).
    cluster_target: str = "original"
    # The user vector every auxiliary term reads (z_u of eq. 2, which the paper leaves open): "last" = the
    # last-position output that also scores items; "mean" = the mean of the outputs over the history's real
    # positions, a side vector as the ICLRec lineage uses, so that L_CKD and the clustering do not pull on the
    # ranking vector directly. Serving scores with the last position either way. Paper's configuration: "mean".
    side_vector: str = "mean"
    # h(u), the intent of a user for the contrastive negatives and the distillation teacher: "p" = argmax of the
    # soft assignment (cosine to the prototypes); "q" = argmax of the Sinkhorn equal-partition target (SwAV's
    # reading; with slowly moving prototypes argmax p can put almost every user on one intent).
    intent_from: str = "p"
    # SwAV: prototypes unit-norm at init and re-normalised in place after every optimiser step. Off, they start
    # at norm ~8 (N(0, 1) rows) and are normalised only in the forward pass, so Adam turns them ~8x slower in
    # angle (measured: cosine to their start 0.99 after 3 epochs). Paper's configuration: on.
    unit_prototypes: bool = True
    # Stop the gradient at the distillation teacher (the assigned prototype). The paper mentions no stop-gradient;
    # detached, L_CKD pulls the vector toward a prototype that only the clustering term moves. Paper's
    # configuration: not detached (the prototypes learn from L_CKD too).
    detach_teacher: bool = False
    # DANN: the reversal coefficient ramps 2 / (1 + exp(-10 p)) - 1 from 0 to 1 over training; a constant 1
    # from the first step stalled the next-item loss with the earlier settings (docs/s4rec.md, "Method choices",
    # L_Adv). The paper has no ramp; paper's configuration: off.
    adversary_ramp: bool = False
    # Fraction of training over which alpha, beta1 and beta2 rise linearly from 0 to their values (0 = the
    # paper: full weights from the first step). Paper's configuration: 0. (With the earlier milder settings
    # 0.3 won on validation, 8 epochs, 0.0585 vs 0.0556: benchmarks/RESULTS.md section 4.)
    warmup: float = 0.0
    # Fraction of training at which alpha, beta1 and beta2 are back at 0, falling linearly from the end of the
    # warm-up (0 = no cool-down: the paper, and the default). Why: every S4Rec variant leads its backbone on
    # validation for the first ~20 epochs and is caught later (benchmarks/RESULTS.md section 9); a cool-down keeps
    # the early push and leaves the end of training to the next-item loss (section 11 measures it).
    cooldown: float = 0.0
    # Augmentations (Appendix A). The paper's crop *removes* 80% of the history (keeps 20%: crop_ratio 0.2);
    # it gives no mask ratio, the CL4SRec/ICLRec lineage masks 70% (mask_ratio 0.7). Paper's configuration: both
    # (the project's earlier values were 0.6 and 0.3; docs/s4rec.md compares them).
    mask_ratio: float = 0.7  # gamma: fraction of the items the mask view hides
    crop_ratio: float = 0.2  # eta: fraction of the items the crop view keeps (one contiguous run)
    reorder_ratio: float = 0.2  # beta: fraction the reorder view shuffles (the paper's 0.2)
    insert_ratio: float = 0.2  # fraction of popular items the insert view adds (the paper's 0.2)

    def __post_init__(self) -> None:
        for name in ("cluster_weight", "contrastive_weight", "distill_weight", "adversary_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}. Use 0 to turn the term off.")
        for name in (
            "cluster_temperature",
            "sinkhorn_epsilon",
            "contrastive_temperature",
            "distill_temperature",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("mask_ratio", "crop_ratio", "reorder_ratio", "insert_ratio", "warmup"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.cooldown and not self.warmup < self.cooldown <= 1.0:
            raise ValueError(
                f"cooldown must be 0 (off) or in (warmup, 1] = ({self.warmup}, 1], got {self.cooldown}: "
                "it is the fraction of training at which the weights are back at 0, after the warm-up ends."
            )
        if self.num_intents < 2:
            raise ValueError(f"num_intents must be >= 2, got {self.num_intents}.")
        if self.sinkhorn_iterations < 1:
            raise ValueError(f"sinkhorn_iterations must be >= 1, got {self.sinkhorn_iterations}.")
        if self.cluster_target not in ("original", "swapped"):
            raise ValueError(f"cluster_target must be 'original' or 'swapped', got {self.cluster_target!r}.")
        if self.side_vector not in SIDE_VECTORS:
            raise ValueError(f"side_vector must be one of {SIDE_VECTORS}, got {self.side_vector!r}.")
        if self.intent_from not in INTENT_SOURCES:
            raise ValueError(f"intent_from must be one of {INTENT_SOURCES}, got {self.intent_from!r}.")

    @classmethod
    def backbone(cls) -> ObjectiveConfig:
        """Every auxiliary weight 0: the plain next-item backbone."""
        return cls(cluster_weight=0.0, contrastive_weight=0.0, distill_weight=0.0, adversary_weight=0.0)

    @property
    def enabled(self) -> bool:
        return self.needs_prototypes or self.adversary_weight > 0

    @property
    def needs_prototypes(self) -> bool:
        # The intent negatives of L_SCL and the teacher of L_CKD are prototypes too.
        return self.cluster_weight > 0 or self.contrastive_weight > 0 or self.distill_weight > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ObjectiveConfig:
        """The config of ``values`` (e.g. a checkpoint's ``training.objectives``); options removed since are
        accepted at their "off" value, which is what this code does."""
        values = dict(values)
        for name, off in REMOVED_OPTIONS.items():
            if name in values and (value := values.pop(name)) != off:
                raise ValueError(
                    f"objective config {name}={value!r}: this option was removed (measured no better, "
                    f"benchmarks/RESULTS.md section 6; the code last existed at commit e21a317). "
                    f"Drop it or set it to {off!r}."
                )
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown objective config keys {sorted(unknown)}; this s4rec knows {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_stored(cls, values: dict) -> ObjectiveConfig:
        """The config a checkpoint's ``training.objectives`` was trained with: :meth:`from_dict`, with each option
        the checkpoint predates (:data:`ADDED_OPTIONS`) at the value the code had then, not today's default."""
        return cls.from_dict({**ADDED_OPTIONS, **values})


@dataclass
class TrainConfig:
    """The training loop's settings (:func:`~s4rec_train.train.train`); the checkpoint's ``training.settings``."""

    # Upper bound; early stopping (patience below) usually ends the run sooner. 50, not 30: S4Rec's default
    # objective (the paper's configuration) was still improving at epoch 29-30 on all 3 Beauty seeds under a
    # 30-epoch budget; with 50 it stopped at epochs 38 and 41 (best 33 and 36), validation NDCG@20 +0.6% and +0.9%
    # (seeds 0 and 1; benchmarks/RESULTS.md section 15).
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3  # Adam, as in the paper
    weight_decay: float = 0.0
    patience: int = 5  # validations without a better validation NDCG@20 before stopping
    # Validate after every this many epochs (and after the last): the checkpoint is the best validated epoch.
    # Validation costs ~a quarter of a Beauty epoch on CPU, so short runs validate rarely (examples/quickstart.py).
    validate_every: int = 1
    # Learning-rate schedule over the run's steps: constant, or linear warm-up over the first 5% of the steps
    # then linear decay to 0 at the last epoch ("linear"), which lets a short run use a higher rate
    # (benchmarks/quick_schedule.py).
    lr_schedule: str = "constant"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda (auto picks CUDA when present)
    bf16: bool = False  # bf16 autocast for the forward pass (CUDA, or CPUs with bf16 support)
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    # auto: full-catalogue softmax cross-entropy up to 50,000 items (Beauty/Toys: 12k), sampled softmax above,
    # where the (positions x items) logits block passes ~0.5 GB and a CPU step costs >10x the sampled one
    # (measured: s4rec_train.sampled.SAMPLED_ABOVE); softmax; sampled; bce: one sampled negative (paper's SASRec).
    loss: str = "auto"
    # Sampled softmax: negatives shared by each step's batch, drawn uniformly (eSASRec's strong SASRec used 256
    # uniform negatives; more cost little next to the encoder), by popularity, or half each (mixed) ...
    negatives: int = 1024
    negative_sampler: str = "uniform"
    # ... plus at most this many of the batch's own target items (in-batch negatives: popular items, which
    # uniform draws rarely hit); 0 turns them off.
    in_batch_negatives: int = 1024
    # The item table's rows get sparse gradients and a lazy Adam (torch's SparseAdam: only the rows a step
    # touches move, as large-embedding trainers do) instead of a dense Adam over all N x d entries every step:
    # at 10^6 items on CPU that dense update dominates a sampled step (benchmarks/softmax_threshold.py). Only
    # with a sampled loss (full softmax touches every row), no weight decay, not with NCCL.
    sparse_items: bool = False
    # Every prefix of each training part is a sequence of its own, trained at its last position only
    # (sub-sequence splitting of the SASRec-CE baselines BSARec, ICSRec, DuoRec); off: one sequence per user.
    prefix_split: bool = False
    # How users are grouped into batches (see batch_order): tokens = similar lengths, as many training positions
    # per batch as random batches, ~2x faster on CPU than random and measured best for the backbone
    # (benchmarks/RESULTS.md section 0); users; random. auto (the default): tokens for the backbone, random when
    # S4Rec's batch-level terms are on (the clustering's Sinkhorn targets and the head/tail adversary need batches
    # of many users of every length; s4rec_train.batching.resolve_batching refuses the other modes for them).
    batching: str = "auto"
    eval_batch_size: int = 1024
    # Which interactions train, validate and test (s4rec_train.splits): "loo" (leave-one-out: each user's last
    # item is test, the one before validation) or "time" (a global temporal split for logs with timestamps: the
    # last test_fraction of the interactions in time are the test period, the valid_fraction before validation).
    split: str = "loo"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {self.batching!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")
        if self.in_batch_negatives < 0:
            raise ValueError(f"in_batch_negatives must be >= 0, got {self.in_batch_negatives}. Use 0 for none.")
        if self.sparse_items and self.weight_decay:
            raise ValueError(
                "sparse_items updates the item table with SparseAdam, which has no weight decay; "
                "set weight_decay to 0 or turn sparse_items off."
            )
        if self.sparse_items and self.loss == "softmax":
            raise ValueError(
                "sparse_items needs a sampled loss (sampled, auto or bce): the full softmax touches "
                "every item row, so its gradient is dense."
            )
        if self.negative_sampler not in SAMPLERS:
            raise ValueError(f"negative_sampler must be one of {SAMPLERS}, got {self.negative_sampler!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not (0 < self.valid_fraction and 0 < self.test_fraction and self.valid_fraction + self.test_fraction < 1):
            raise ValueError(
                f"valid_fraction and test_fraction must be > 0 with a sum below 1 (the rest trains), got "
                f"{self.valid_fraction} and {self.test_fraction}"
            )
