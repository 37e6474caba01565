"""Data-parallel training on several devices and hosts, on Keras' own engines; one switch for every paper.

    placement = distribute.setup(config)     # Run does this first, before any variable exists

`config.distribute`: `none` (one device), `data_parallel` (every visible device), `auto` (data parallel when
more than one accelerator is visible, or more than one process takes part). The global batch stays the
paper's batch, split evenly over the replicas; learning rates are unchanged.

- JAX: `keras.distribution.DataParallel` over every device of every process. The train step is one SPMD
  program on the global batch: batch-norm statistics, batch means and random draws are those of the global
  batch, so the update equals one device's up to float summation order. Several hosts: every process runs
  the same command with `--coordinator=HOST:PORT --num_processes=N --process_id=I` (or Keras' variables
  KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID), which calls
  `keras.distribution.initialize` (JAX's coordination service; on CPUs the gloo collectives). Each process
  feeds its own rows of every global batch (`shard_for_process`).
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs of this host (else its logical CPUs), set as
  the process-wide strategy, so that a paper's models and optimizers are made under it without code of
  their own. Each replica runs the train step on its share; Keras sums the gradients. What differs from
  one device, and what this module does about it:
  - losses are per replica, so a custom step scales each by 1 / replicas (`replica_loss`), as Keras' own
    `compile` losses are scaled; a mean over the batch then gives the global mean's gradient;
  - batch normalisation: `prepare_model` turns on Keras' `synchronized=True`, so statistics are over the
    global batch as on one device (off with `--sync_batchnorm=false`: each replica's share, a recipe change).
    These are Keras' composed ops, where one device trains with TensorFlow's fused kernel (`common.layers`):
    the two agree up to float rounding;
  - noise a model draws for its batch (a GAN's z, a VAE's epsilon) goes through `batch_draw`: drawn for the
    global batch, each replica keeping its rows, so the replicas neither repeat one another nor depart from
    one device. Keras' Dropout and GaussianNoise would draw per replica from the shared seed, repeating each
    other's masks: the papers use `common.layers`' versions, which draw through `batch_draw` on replicas;
  - a loss that compares batch means (feature matching, Salimans et al. 2016) takes them over the global
    batch (`batch_mean`, an all-reduce); a step that cuts its batch into minibatches (WGAN's critic) gets
    its batches reordered so each replica's share holds its rows of every minibatch
    (`minibatches_for_replicas`) and cuts its share by `share`.
A paper whose training is not one `fit` over batches that split (speech emotion's small per-fold networks on
arrays) says why in `ONE_DEVICE_ONLY`, and trains on one device on either backend.
  Several hosts are not offered on TensorFlow: Keras 3 with `MultiWorkerMirroredStrategy` has an open bug
  (keras-team/keras#20585); use the JAX backend.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import keras

from common.errors import UserError, check_choice
from common.lifecycle.config import DISTRIBUTE_CHOICES as CHOICES

ENV = {"coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES", "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
       "process_id": "KERAS_DISTRIBUTION_PROCESS_ID"}


class DistributeError(UserError):
    """A distribution that cannot be set up as asked (a batch that does not split, a backend that lacks it)."""


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's train step runs, for its record: `kind` (none or data_parallel), the number of
    replicas (devices) and of hosts (processes), this process's index, the engine and what batch
    normalisation computes its statistics over."""

    kind: str = "none"
    replicas: int = 1
    hosts: int = 1
    process_id: int = 0
    engine: str = ""
    batchnorm: str = "the batch (one device)"

    @property
    def chief(self) -> bool:
        """Process 0: the one that writes the run's record and reports."""
        return self.process_id == 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_placement = Placement()
_initialized = False
_strategy = None  # TensorFlow's MirroredStrategy, when one is installed


def placement() -> Placement:
    """The placement `setup` chose in this process (one device until it is called)."""
    return _placement


def _cluster(config) -> tuple[str | None, int, int]:
    """(coordinator address, process count, process id) from the config, else Keras' environment variables."""
    coordinator = config.coordinator or os.environ.get(ENV["coordinator"]) or None
    try:
        processes = config.num_processes or int(os.environ.get(ENV["num_processes"], "1"))
        process_id = config.process_id if config.process_id >= 0 else int(os.environ.get(ENV["process_id"], "0"))
    except ValueError:
        raise DistributeError(f"{ENV['num_processes']} and {ENV['process_id']} must be integers") from None
    if processes > 1 and not coordinator:
        raise DistributeError(f"--num_processes={processes} needs the coordinator's address: --coordinator=HOST:PORT "
                              f"(process 0's host) or {ENV['coordinator']}")
    if not 0 <= process_id < processes:
        raise DistributeError(f"--process_id={process_id} must be in 0..{processes - 1} (--num_processes={processes})")
    return coordinator, processes, process_id


def join(coordinator: str, processes: int, process_id: int) -> None:
    """`keras.distribution.initialize`; a coordinator that cannot be reached (or bound, by process 0) is the
    user's mistake, said in one line."""
    try:
        keras.distribution.initialize(coordinator, processes, process_id)
    except Exception as e:  # JAX raises its runtime's errors (a deadline, an address in use) as they come
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DistributeError(f"process {process_id} of {processes} could not join the coordinator at {coordinator} "
                              f"({type(e).__name__}: {first}): start every process with the same --coordinator, "
                              f"process 0's HOST:PORT, reachable from every host and free on process 0's") from None


def accelerators() -> list:
    """The accelerators (GPUs, TPUs) this process sees, of every host once initialised."""
    if keras.backend.backend() == "jax":
        import jax

        return [d for d in jax.devices() if d.platform != "cpu"]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.config.list_logical_devices("GPU")
    return []


def setup(config) -> Placement:
    """Initialise the hosts (when several take part), choose the placement for `config.distribute` and
    install it process-wide; returns it. Call before any model, optimizer or random draw exists."""
    global _placement, _initialized, _strategy
    check_choice("--distribute", config.distribute, CHOICES, DistributeError)
    coordinator, processes, process_id = _cluster(config)
    backend = keras.backend.backend()
    if processes > 1:
        if backend != "jax":
            raise DistributeError("training on several hosts needs the JAX backend (KERAS_BACKEND=jax): Keras 3 with "
                                  "TensorFlow's MultiWorkerMirroredStrategy has an open bug (keras-team/keras#20585)")
        if config.distribute == "none":
            raise DistributeError(f"--num_processes={processes} with --distribute=none: use data_parallel or auto")
        if config.jit_compile == "false":
            raise DistributeError("--jit_compile=false with several processes: each eager operation would be a "
                                  "collective of its own; leave --jit_compile=auto")
        if not _initialized:
            join(coordinator, processes, process_id)
            _initialized = True
    mode = config.distribute
    if mode == "auto":
        mode = "data_parallel" if len(accelerators()) > 1 or processes > 1 else "none"
    alone = type(config).ONE_DEVICE_ONLY
    if mode == "data_parallel" and alone:
        if config.distribute == "data_parallel":
            raise DistributeError(f"this paper trains on one device ({alone}): use --distribute=none")
        print(f"--distribute=auto: one device ({alone})")
        mode = "none"
    if mode == "data_parallel" and backend == "jax" and not config.sync_batchnorm:
        raise DistributeError("--sync_batchnorm=false is offered on TensorFlow only: on JAX the train step is one "
                              "program over the global batch, so batch norm always sees all of it")
    if mode == "data_parallel":
        count = (len(keras.distribution.list_devices()) if backend == "jax" else
                 len(accelerators() or _tf_cpus()) if backend == "tensorflow" else 1)
        batch = getattr(config, "batch_size", None)
        if batch and batch % count:
            if config.distribute == "data_parallel":
                raise DistributeError(f"--batch_size={batch} does not split over {count} devices: use a multiple of "
                                      f"{count}, or fewer devices (--distribute=none for one)")
            print(f"--distribute=auto: one device, since the batch of {batch} does not split over {count} devices")
            mode = "none"
    if mode == "none":
        _clear()
        _placement = Placement()
        return _placement
    if backend == "jax":
        devices = _install_jax()
        _placement = Placement("data_parallel", len(devices), processes, process_id,
                               "keras.distribution.DataParallel (JAX)", "the global batch (one SPMD program)")
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or _tf_cpus()
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        tf.distribute.experimental_set_strategy(strategy)
        _strategy = strategy
        _placement = Placement("data_parallel", strategy.num_replicas_in_sync, 1, 0,
                               "tf.distribute.MirroredStrategy",
                               "the global batch (synchronized=True)" if config.sync_batchnorm
                               else "each replica's share")
    else:
        raise DistributeError(f"data-parallel training supports the jax and tensorflow backends, not {backend}")
    return _placement


def _install_jax() -> list:
    """DataParallel over every device of every process; returns the devices. Our pipelines are PyDatasets of
    global batches, so Keras does not shard them: each process takes its rows itself (`shard_for_process`)."""
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    return devices


def _tf_cpus() -> list:
    import tensorflow as tf

    return tf.config.list_logical_devices("CPU")


def _clear() -> None:
    """Back to one device (a test process may run several configurations one after another)."""
    global _strategy
    _strategy = None
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy():
            tf.distribute.experimental_set_strategy(None)


def clear_session() -> None:
    """`keras.backend.clear_session()` (a fresh graph, e.g. between a search's candidates) that keeps the
    placement: Keras' own forgets a JAX distribution, and TensorFlow's graph reset drops the strategy."""
    keras.backend.clear_session()
    if _placement.kind == "none":
        return
    if keras.backend.backend() == "jax":
        _install_jax()
    elif _strategy is not None:
        import tensorflow as tf

        if tf.distribute.get_strategy() is not _strategy:
            tf.distribute.experimental_set_strategy(_strategy)


def in_force() -> bool:
    """Whether the placement `setup` chose is still installed (a guard for `Run.fit`)."""
    if _placement.kind == "none":
        return True
    if keras.backend.backend() == "jax":
        return keras.distribution.distribution() is not None
    import tensorflow as tf

    return tf.distribute.get_strategy() is _strategy


def check_batch(batch_size: int, what: str = "batch_size") -> None:
    """The global batch must split evenly over the replicas (and over the hosts feeding it)."""
    replicas = _placement.replicas
    if batch_size % replicas:
        raise DistributeError(f"--{what}={batch_size} does not split over {replicas} devices: use a multiple of "
                              f"{replicas}, or fewer devices (--distribute=none for one)")


def prepare_model(model, sync_batchnorm: bool = True) -> None:
    """On TensorFlow replicas, batch normalisation over the global batch (Keras' `synchronized=True`) unless
    `sync_batchnorm` is false. On JAX, the model's (and its sub-models') evaluation and prediction run as on
    one device (`one_device`), since an evaluation set need not split evenly over the devices."""
    if _placement.kind == "none":
        return
    if keras.backend.backend() == "jax":
        for net in [model, *(m for m in model._flatten_layers(include_self=False) if isinstance(m, keras.Model))]:
            for name in ("evaluate", "predict", "predict_on_batch", "test_on_batch"):
                if not getattr(getattr(net, name), "one_device", False):
                    setattr(net, name, one_device(getattr(net, name)))
        return
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(sync_batchnorm)


def one_device(method):
    """`method` run with no distribution set (JAX): replicated weights and a whole batch on every device, so
    that a last batch of any size works; each host computes the same result."""

    @functools.wraps(method)
    def unsharded(*args, **kwargs):
        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            return method(*args, **kwargs)
        finally:
            keras.distribution.set_distribution(current)

    unsharded.one_device = True
    return unsharded


def _replica_context():
    """TensorFlow's replica context inside a MirroredStrategy step with several replicas, else None."""
    if keras.backend.backend() != "tensorflow" or _placement.kind == "none":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def replicated() -> bool:
    """Whether this code runs as one of several TensorFlow replicas, each on its share of the batch."""
    return _replica_context() is not None


def replica_loss(loss):
    """The share of `loss` (a mean over this replica's rows) whose gradient, summed over the replicas as
    Keras' optimizers do under a TensorFlow strategy, is the gradient of the mean over the global batch:
    `loss / replicas` there; `loss` itself elsewhere (JAX computes on the global batch)."""
    context = _replica_context()
    if context is None:
        return loss
    return loss * keras.ops.cast(1.0 / context.num_replicas_in_sync, loss.dtype)


def batch_draw(draw, n):
    """`draw(rows)` (a random tensor with `rows` rows, from a `keras.random.SeedGenerator`) for this
    replica's `n` rows of the batch: on TensorFlow replicas drawn for the global batch and sliced, so each
    replica gets its own rows of what one device would have drawn; elsewhere `draw(n)`."""
    context = _replica_context()
    if context is None:
        return draw(n)
    replicas = context.num_replicas_in_sync
    full = draw(n * replicas)
    start = keras.ops.cast(context.replica_id_in_sync_group, "int32") * n
    return keras.ops.slice(full, [start] + [0] * (len(full.shape) - 1), [n, *full.shape[1:]])


def share(n: int) -> int:
    """This replica's rows of a global batch of `n`: n / replicas on TensorFlow replicas (each of which runs
    the step on its share), else n (one device, or JAX's one program over the global batch)."""
    context = _replica_context()
    return n if context is None else n // context.num_replicas_in_sync


def batch_mean(x):
    """The mean over the rows of the global batch (axis 0), for a loss that compares batch means: on
    TensorFlow replicas, each replica's mean averaged over the replicas by an all-reduce (whose gradient
    TensorFlow defines as the all-reduce of the replicas' gradients); elsewhere `mean(x, axis=0)`."""
    mean = keras.ops.mean(x, axis=0)
    context = _replica_context()
    if context is None:
        return mean
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.MEAN, mean)


class MappedBatches(keras.utils.PyDataset):
    """The batches of `data` (a PyDataset) with `fn` applied to every array in them, nested ones too (the
    semi-supervised GAN's ((labelled, unlabelled, unlabelled), labels)). `set_epoch` passes through."""

    def __init__(self, data, fn):
        super().__init__(workers=getattr(data, "workers", 1), use_multiprocessing=False,
                         max_queue_size=getattr(data, "max_queue_size", 10))
        self.data, self.fn = data, fn
        self.batch_size = getattr(data, "batch_size", None)
        if hasattr(data, "set_epoch"):
            self.set_epoch = data.set_epoch

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return keras.tree.map_structure(self.fn, self.data[index])


def replica_minibatches(groups: int, replicas: int):
    """For batches that a step cuts into `groups` consecutive minibatches (WGAN's critic minibatches), on
    TensorFlow replicas: the strategy gives each replica a contiguous share of the batch, so the rows are
    reordered replica by replica, each replica's share holding its rows of every minibatch in order; the
    replicas' minibatches together are then one device's."""

    def reorder(a):
        return a.reshape(groups, replicas, -1, *a.shape[1:]).swapaxes(0, 1).reshape(a.shape)

    return reorder


def process_rows(process_id: int, processes: int):
    """This process's rows of a global batch, for several hosts on JAX: Keras assembles the global batch
    from each process's rows."""

    def rows(a):
        part = len(a) // processes
        return a[process_id * part:(process_id + 1) * part]

    return rows


def minibatches_for_replicas(data, groups: int):
    """`data` (batches a step cuts into `groups` minibatches) as the placement feeds it: reordered by
    `replica_minibatches` on TensorFlow replicas, itself elsewhere."""
    if _placement.kind == "none" or keras.backend.backend() != "tensorflow" or _placement.replicas == 1:
        return data
    return MappedBatches(data, replica_minibatches(groups, _placement.replicas))


def shard_for_process(data):
    """`data` as this process feeds it: itself on one host, its rows of every batch on several."""
    if _placement.hosts == 1:
        return data
    return MappedBatches(data, process_rows(_placement.process_id, _placement.hosts))
