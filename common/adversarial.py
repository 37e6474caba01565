"""Alternating updates of several players (a GAN's generator and discriminator) inside `Model.fit`,
on TensorFlow and on JAX.

Keras' own train step updates one set of variables with one optimizer; a GAN alternates players,
each with its own optimizer, and the critic of a WGAN takes several steps per generator step. A
paper's model subclasses `AdversarialModel`, builds its networks, calls
`compile(players={"discriminator": (optimizer, variables), "generator": (optimizer, variables)})`,
and writes its algorithm once, with `keras.ops` only, in `adversarial_step(x, y)`:

    d_loss = self.minimize("discriminator", lambda: <the critic's loss>)
    g_loss = self.minimize("generator", lambda: <the generator's loss>)

`minimize` computes the gradient of the loss for that player's variables and applies its optimizer
before returning, so the next call sees the updated weights (Algorithm 1 of Goodfellow et al. 2014,
Arjovsky et al. 2017 and Gulrajani et al. 2017 alike). `minimize_if(condition, ...)` makes the
update only where a tensor condition holds, for schedules that depend on a step counter.
`minimize_together(lambda: {"discriminator": d_loss, "generator": g_loss})` instead updates every
player at once from one forward pass: each player's gradient of its own loss, all taken at the same
weights (the simultaneous update of Goodfellow et al.'s pylearn2 code, whose players share one
generated batch and one dropout mask).

Only this module knows the backend: on TensorFlow it uses a gradient tape; on JAX, whose train step
is a pure function of the state, `adversarial_step` runs in a `StatelessScope` and each `minimize`
differentiates a pure function of the player's variable values. `input_gradient` gives d f(x) / dx
for gradient penalties, itself differentiable with respect to the weights.
"""

from __future__ import annotations

import types

import keras

from common.lifecycle import distribute


class PlayerOptimizers(keras.optimizers.Optimizer):
    """One optimizer per player, presented to Keras as the model's single optimizer, so that fit's
    state handling (JAX) and checkpoints (`BackupAndRestore`) carry every player's optimizer state.
    `iterations` is that of the player named `count`, e.g. generator iterations for a GAN."""

    def __init__(self, players: dict[str, keras.optimizers.Optimizer], count: str, name: str = "player_optimizers"):
        super().__init__(learning_rate=0.0, name=name)
        if count not in players:
            raise ValueError(f"count must name one of the players {list(players)}, got {count!r}")
        self.players, self.count = dict(players), count

    def build(self, variables):
        # Each player's optimizer is built with its own variables by AdversarialModel.compile.
        self.built = True

    @property
    def variables(self):
        return [v for optimizer in self.players.values() for v in optimizer.variables]

    @property
    def iterations(self):
        return self.players[self.count].iterations

    # `variables` lists the players' state so that fit carries it (JAX); each player's optimizer, a
    # tracked child, saves and loads that state itself, so saving it here too would store it twice.
    # A checkpoint written before this (a second copy under optimizer/vars) still loads: the copy is ignored.
    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass


class AdversarialModel(keras.Model):
    """Base class for models trained by alternating players; see the module docstring."""

    def compile(self, players: dict[str, tuple], count: str | None = None, **kwargs):
        """`players`: name -> (optimizer, list of variables it updates). `count`: the player whose
        update count is `optimizer.iterations` (default: the last one)."""
        optimizers, player_variables = {}, {}
        for name, (optimizer, variables) in players.items():
            variables = list(variables)
            if not variables:
                raise ValueError(f"player {name!r} has no variables; build the model before compile")
            optimizer.build(variables)
            optimizers[name], player_variables[name] = optimizer, variables
        # A namespace, not a dict: Keras would otherwise track these variables as new state of a built model.
        self._players = types.SimpleNamespace(variables=player_variables)
        # Every player's variables exist, so the model's state is complete: fit need not trace `call`.
        self.built = True
        super().compile(optimizer=PlayerOptimizers(optimizers, count or list(players)[-1]), **kwargs)
        # No compiled loss: the logs are what adversarial_step returns, with no extra "loss" entry.
        self._loss_tracker = None

    def track(self, *names: str):
        """Running means of the step's losses, one per name, in `self.trackers`: Keras resets them at
        each epoch (they are the model's `metrics`) and logs `tracked()`."""
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def tracked(self) -> dict:
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @property
    def metrics(self):
        trackers = getattr(self, "trackers", None)
        return list(trackers.values()) if trackers is not None else super().metrics

    def adversarial_step(self, x, y=None) -> dict:
        """One step of the paper's algorithm on a batch of real data `x` (labels `y`, if the dataset has
        them); returns the logs (metric results). Override."""
        raise NotImplementedError

    def minimize(self, player: str, loss_fn, has_aux: bool = False):
        """Update `player`'s variables with its optimizer along the gradient of `loss_fn()`; returns the
        loss. With `has_aux`, `loss_fn` returns (loss, aux) (tensors computed on the way, e.g. a
        critic's Wasserstein estimate without its penalty) and so does `minimize`."""
        optimizer, variables = self.optimizer.players[player], self._players.variables[player]
        fn = loss_fn if has_aux else (lambda: (loss_fn(), None))
        if keras.backend.backend() == "jax":
            loss, aux = self._minimize_jax(fn, variables, optimizer)
            return (loss, aux) if has_aux else loss
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss, aux = fn()
                share = distribute.replica_loss(loss)  # under a strategy: gradients are summed over replicas
            optimizer.apply(tape.gradient(share, variables), variables)
            return (loss, aux) if has_aux else loss
        raise NotImplementedError(f"AdversarialModel supports the tensorflow and jax backends, not "
                                  f"{keras.backend.backend()}")

    def minimize_together(self, losses_fn, has_aux: bool = False):
        """Update every player named in `losses_fn()`'s dict {player: loss} along the gradient of its own
        loss with respect to its own variables, all gradients taken before any update (one forward
        pass, shared by the losses). Returns the dict of losses (and aux with `has_aux`)."""
        fn = losses_fn if has_aux else (lambda: (losses_fn(), None))
        if keras.backend.backend() == "jax":
            losses, aux = self._minimize_together_jax(fn)
        elif keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape(persistent=True) as tape:
                losses, aux = fn()
                shares = {p: distribute.replica_loss(loss) for p, loss in losses.items()}
            grads = {p: tape.gradient(share, self._players.variables[p]) for p, share in shares.items()}
            del tape
            for player, player_grads in grads.items():
                self.optimizer.players[player].apply(player_grads, self._players.variables[player])
        else:
            raise NotImplementedError(f"AdversarialModel supports the tensorflow and jax backends, not "
                                      f"{keras.backend.backend()}")
        return (losses, aux) if has_aux else losses

    def minimize_if(self, condition, player: str, loss_fn):
        """`minimize(player, loss_fn)` where the boolean scalar tensor `condition` holds; otherwise nothing
        changes (no gradient, no optimizer step, no state a loss would update) and the loss reads 0. For
        schedules whose update pattern depends on a counter (e.g. the WGAN code's extra critic steps),
        with the static shapes of a compiled step."""
        if keras.backend.backend() == "jax":
            return self._minimize_if_jax(condition, player, loss_fn)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.cond(condition, lambda: tf.cast(self.minimize(player, loss_fn), "float32"),
                           lambda: tf.zeros((), "float32"))
        raise NotImplementedError(f"AdversarialModel supports the tensorflow and jax backends, not "
                                  f"{keras.backend.backend()}")

    # --- TensorFlow: Keras calls train_step(data) inside its tf.function.
    # --- JAX: Keras calls train_step(state, data) under jit and expects the new state back.
    if keras.backend.backend() == "jax":

        def train_step(self, state, data):
            groups = (self.trainable_variables, self.non_trainable_variables, self.optimizer.variables,
                      self.metrics_variables)
            mapping = [pair for variables, values in zip(groups, state, strict=True)
                       for pair in zip(variables, values, strict=True)]
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            with keras.StatelessScope(state_mapping=mapping) as scope:
                logs = self.adversarial_step(x, y)
            new_state = tuple([scope.get_current_value(v) for v in variables] for variables in groups)
            return logs, new_state

        def _minimize_jax(self, loss_fn, variables, optimizer):
            import jax
            from keras.src.backend.common.stateless_scope import get_stateless_scope

            outer = get_stateless_scope()
            chosen = {id(v) for v in variables}
            others = [v for v in (*self.variables, *self.optimizer.variables) if id(v) not in chosen]

            def pure(values):
                mapping = [(v, outer.get_current_value(v)) for v in others] + list(zip(variables, values, strict=True))
                with keras.StatelessScope(state_mapping=mapping) as inner:
                    loss, aux = loss_fn()
                # Non-differentiated state the loss changed: seed generators, normalisation statistics.
                return loss, (aux, [inner.get_current_value(v) for v in others])

            current = [outer.get_current_value(v) for v in variables]
            (loss, (aux, updated)), grads = jax.value_and_grad(pure, has_aux=True)(current)
            for v, value in zip(others, updated, strict=True):
                v.assign(value)
            _apply_stateless(optimizer, outer, grads, variables, current)
            return loss, aux

        def _minimize_together_jax(self, losses_fn):
            import jax
            from keras.src.backend.common.stateless_scope import get_stateless_scope

            outer = get_stateless_scope()
            players = list(self._players.variables)
            chosen = [v for p in players for v in self._players.variables[p]]
            ids = {id(v) for v in chosen}
            others = [v for v in (*self.variables, *self.optimizer.variables) if id(v) not in ids]
            names: list[str] = []

            def pure(values):
                mapping = [(v, outer.get_current_value(v)) for v in others] + list(zip(chosen, values, strict=True))
                with keras.StatelessScope(state_mapping=mapping) as inner:
                    losses, aux = losses_fn()
                names[:] = list(losses)
                return [losses[p] for p in names], (aux, [inner.get_current_value(v) for v in others])

            current = [outer.get_current_value(v) for v in chosen]
            out, pullback, (aux, updated) = jax.vjp(pure, current, has_aux=True)
            for v, value in zip(others, updated, strict=True):
                v.assign(value)
            start = {p: sum(len(self._players.variables[q]) for q in players[:players.index(p)]) for p in players}
            for i, player in enumerate(names):
                # The gradient of this player's loss alone: a cotangent of 1 on it, 0 on the others.
                (grads,) = pullback([keras.ops.ones_like(o) if j == i else keras.ops.zeros_like(o)
                                     for j, o in enumerate(out)])
                variables = self._players.variables[player]
                own = grads[start[player]:start[player] + len(variables)]
                values = current[start[player]:start[player] + len(variables)]
                _apply_stateless(self.optimizer.players[player], outer, own, variables, values)
            return dict(zip(names, out, strict=True)), aux

        def _minimize_if_jax(self, condition, player, loss_fn):
            import jax
            from keras.src.backend.common.stateless_scope import get_stateless_scope

            outer = get_stateless_scope()
            state = list({id(v): v for v in (*self.variables, *self.optimizer.variables)}.values())

            def update(values):
                with keras.StatelessScope(state_mapping=list(zip(state, values, strict=True))) as inner:
                    loss = keras.ops.cast(self.minimize(player, loss_fn), "float32")
                return loss, [inner.get_current_value(v) for v in state]

            def keep(values):
                return keras.ops.zeros((), "float32"), list(values)

            loss, values = jax.lax.cond(condition, update, keep, [outer.get_current_value(v) for v in state])
            for v, value in zip(state, values, strict=True):
                v.assign(value)
            return loss

    else:

        def train_step(self, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            return self.adversarial_step(x, y)

        def _minimize_jax(self, loss_fn, variables, optimizer):
            raise RuntimeError("the JAX path of minimize needs KERAS_BACKEND=jax")

        def _minimize_if_jax(self, condition, player, loss_fn):
            raise RuntimeError("the JAX path of minimize_if needs KERAS_BACKEND=jax")

        def _minimize_together_jax(self, losses_fn):
            raise RuntimeError("the JAX path of minimize_together needs KERAS_BACKEND=jax")


def _apply_stateless(optimizer, outer, grads, variables, values) -> None:
    """One step of `optimizer` taken in JAX's stateless scope `outer`: `variables` (whose values the
    gradients were taken at) and the optimizer's own state get their new values."""
    new_values, new_optimizer_values = optimizer.stateless_apply(
        [outer.get_current_value(v) for v in optimizer.variables], grads, values)
    for v, value in zip((*variables, *optimizer.variables), (*new_values, *new_optimizer_values), strict=True):
        v.assign(value)


def input_gradient(fn, x):
    """d sum(fn(x)) / dx, e.g. a critic's gradient at interpolated images for the gradient penalty of
    Gulrajani et al. 2017. The result stays differentiable with respect to the weights `fn` uses."""
    backend = keras.backend.backend()
    x = keras.ops.convert_to_tensor(x)
    if backend == "jax":
        import jax

        return jax.grad(lambda inputs: keras.ops.sum(fn(inputs)))(x)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            out = keras.ops.sum(fn(x))
        return tape.gradient(out, x)
    raise NotImplementedError(f"input_gradient supports the tensorflow and jax backends, not {backend}")
