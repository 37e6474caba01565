import keras
import numpy as np
import pytest
from keras import ops

from common.adversarial import AdversarialModel, PlayerOptimizers, input_gradient


class Chase(AdversarialModel):
    """Two players with their own optimizers: `a` moves to the data mean; `b` then chases 2a. The
    second player must see the first one's update from the same step, as a GAN's generator sees the
    critic it just trained, and `a` takes `n_a` steps per step of `b` (like n_critic)."""

    def __init__(self, n_a=1, **kwargs):
        super().__init__(**kwargs)
        self.n_a = n_a
        self.a = self.add_weight(shape=(), initializer="zeros", name="a")
        self.b = self.add_weight(shape=(), initializer="zeros", name="b")
        self.noise = keras.random.SeedGenerator(0)
        self.track("a_loss", "b_loss")
        self.seen_a = self.add_weight(shape=(), initializer="zeros", name="seen_a", trainable=False)
        self.built = True

    def adversarial_step(self, x, y=None):
        for _ in range(self.n_a):
            loss_a = self.minimize("a", lambda: ops.mean(ops.square(self.a - x)))
        # The b player reads a after a's update; the noise checks that seed state survives the step.
        self.seen_a.assign(ops.convert_to_tensor(self.a))
        loss_b = self.minimize("b", lambda: ops.square(self.b - 2 * self.a)
                               + 0.0 * keras.random.normal((), seed=self.noise))
        self.trackers["a_loss"].update_state(loss_a)
        self.trackers["b_loss"].update_state(loss_b)
        return self.tracked()


def _fit(n_a=1, epochs=1):
    keras.utils.set_random_seed(0)
    model = Chase(n_a=n_a)
    model.compile(players={"a": (keras.optimizers.SGD(0.1), [model.a]), "b": (keras.optimizers.Adam(0.1), [model.b])})
    x = np.full((64, 1), 3.0, np.float32)
    history = model.fit(x, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
    return model, history


@pytest.mark.jax
def test_players_alternate_with_their_own_optimizers():
    model, history = _fit()
    a, b = float(ops.convert_to_numpy(model.a)), float(ops.convert_to_numpy(model.b))
    # SGD on (a - 3)^2 with lr 0.1 for 8 steps: a_t = 3 (1 - 0.8^t).
    assert a == pytest.approx(3 * (1 - 0.8**8), rel=1e-5)
    assert float(ops.convert_to_numpy(model.seen_a)) == pytest.approx(a, rel=1e-6)
    # Adam moves b by about lr per step towards 2a: 8 steps of ~0.1.
    assert 0.6 < b < 0.9
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 8  # counts the last player, b
    assert int(ops.convert_to_numpy(model.optimizer.players["a"].iterations)) == 8
    assert set(history.history) == {"a_loss", "b_loss"}


@pytest.mark.jax
def test_tracked_losses_are_each_epochs_own_mean():
    _, history = _fit(epochs=2)
    # a's loss before step t is (a_t - 3)^2 = 9 * 0.64^t; epoch 2 holds steps 8-15 only (reset by Keras).
    for epoch, steps in enumerate((range(0, 8), range(8, 16))):
        assert history.history["a_loss"][epoch] == pytest.approx(np.mean([9 * 0.64**t for t in steps]), rel=1e-4)


@pytest.mark.jax
def test_inner_steps_and_optimizer_state_in_checkpoints(tmp_path):
    model, _ = _fit(n_a=3)
    assert int(ops.convert_to_numpy(model.optimizer.players["a"].iterations)) == 24
    model.save_weights(tmp_path / "m.weights.h5")
    again = Chase(n_a=3)
    again.compile(players={"a": (keras.optimizers.SGD(0.1), [again.a]), "b": (keras.optimizers.Adam(0.1), [again.b])})
    again.load_weights(tmp_path / "m.weights.h5")
    for x, y in zip(model.optimizer.variables, again.optimizer.variables, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(x), ops.convert_to_numpy(y))
    assert int(ops.convert_to_numpy(again.optimizer.players["b"].iterations)) == 8


def _groups(path):
    """Every group of a weights file that holds arrays -> how many."""
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, len(obj)) if isinstance(obj, h5py.Group)
                     and any(isinstance(v, h5py.Dataset) for v in obj.values()) else None)
    return found


@pytest.mark.jax
def test_each_players_optimizer_state_is_saved_once_and_old_checkpoints_load(tmp_path, monkeypatch):
    model, _ = _fit(n_a=3)
    model.save_weights(tmp_path / "m.weights.h5")
    saved = {name: n for name, n in _groups(tmp_path / "m.weights.h5").items() if name.startswith("optimizer")}
    # SGD: its iteration count and learning rate; Adam: those and m, v of b. Nothing under optimizer/vars.
    assert saved == {"optimizer/players/sgd/vars": 2, "optimizer/players/adam/vars": 4}
    # A checkpoint of the earlier code, with the same state saved again under optimizer/vars, loads too.
    monkeypatch.setattr(PlayerOptimizers, "save_own_variables", keras.optimizers.Optimizer.save_own_variables)
    model.save_weights(tmp_path / "old.weights.h5")
    monkeypatch.undo()
    assert _groups(tmp_path / "old.weights.h5")["optimizer/vars"] == 6
    again = Chase(n_a=3)
    again.compile(players={"a": (keras.optimizers.SGD(0.1), [again.a]), "b": (keras.optimizers.Adam(0.1), [again.b])})
    again.load_weights(tmp_path / "old.weights.h5")
    for x, y in zip(model.optimizer.variables, again.optimizer.variables, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(x), ops.convert_to_numpy(y))


@pytest.mark.jax
def test_input_gradient_is_exact_and_differentiable_in_the_weights():
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    x = ops.convert_to_tensor(np.array([[0.5, 3.0], [1.0, 1.0]], np.float32))
    grad = input_gradient(lambda inputs: ops.sum(w * ops.square(inputs), axis=1), x)
    np.testing.assert_allclose(ops.convert_to_numpy(grad), 2 * np.array([1.0, -2.0]) * ops.convert_to_numpy(x))

    class Penalty(AdversarialModel):
        def adversarial_step(self, x, y=None):
            def loss():
                g = input_gradient(lambda inputs: ops.sum(self.w * ops.square(inputs), axis=1), x)
                return ops.mean(ops.square(ops.sqrt(ops.sum(ops.square(g), axis=1) + 1e-12) - 1.0))
            return {"loss": self.minimize("critic", loss)}

    model = Penalty()
    model.w = model.add_weight(shape=(2,), initializer="ones", name="w")
    model.built = True
    model.compile(players={"critic": (keras.optimizers.SGD(0.01), [model.w])})
    first = model.fit(np.ones((16, 2), np.float32), batch_size=16, epochs=1, verbose=0).history["loss"][0]
    later = model.fit(np.ones((16, 2), np.float32), batch_size=16, epochs=20, verbose=0).history["loss"][-1]
    assert later < first  # the penalty's gradient reached the weights through the input gradient


@pytest.mark.jax
def test_state_updated_inside_a_loss_is_kept():
    """Batch-norm statistics change while a player's loss is computed; they must survive the update."""

    class WithNorm(AdversarialModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3)
            self.norm = keras.layers.BatchNormalization(momentum=0.5)

        def build(self, input_shape):
            self.dense.build(input_shape)
            self.norm.build((None, 3))

        def adversarial_step(self, x, y=None):
            loss = self.minimize("net", lambda: ops.mean(ops.square(self.norm(self.dense(x), training=True) - 1)))
            return {"net_loss": loss}

    keras.utils.set_random_seed(0)
    model = WithNorm()
    model.build((None, 2))
    model.compile(players={"net": (keras.optimizers.SGD(0.01), model.dense.trainable_weights)})
    x = np.random.default_rng(0).normal(3.0, 1.0, (32, 2)).astype(np.float32)
    model.fit(x, batch_size=16, epochs=1, verbose=0)
    moving_mean = ops.convert_to_numpy(model.norm.moving_mean)
    assert np.abs(moving_mean).max() > 0.1  # two updates with momentum 0.5 from 0 towards the batch means


class EveryOther(AdversarialModel):
    """`a` updates every step, `b` (whose loss also draws noise) only on odd steps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = self.add_weight(shape=(), initializer="zeros", name="a")
        self.b = self.add_weight(shape=(), initializer="zeros", name="b")
        self.count = self.add_weight(shape=(), initializer="zeros", name="count", trainable=False, dtype="int32")
        self.noise = keras.random.SeedGenerator(0)
        self.built = True

    def adversarial_step(self, x, y=None):
        self.minimize("a", lambda: ops.mean(ops.square(self.a - x)))
        loss_b = self.minimize_if(ops.equal(self.count % 2, 1), "b", lambda: ops.square(self.b - 1.0)
                                  + 0.0 * keras.random.normal((), seed=self.noise))
        self.count.assign(self.count + 1)
        return {"b_loss": loss_b}


@pytest.mark.jax
def test_minimize_if_updates_only_where_the_condition_holds():
    model = EveryOther()
    model.compile(players={"a": (keras.optimizers.SGD(0.1), [model.a]), "b": (keras.optimizers.Adam(0.1), [model.b])})
    x = np.full((8, 1), 3.0, np.float32)
    seen = []
    for _ in range(4):
        logs = model.train_on_batch(x, return_dict=True)
        seed_state = ops.convert_to_numpy(model.noise.state).copy()
        seen.append((float(ops.convert_to_numpy(model.b)), logs["b_loss"], seed_state))
    assert seen[0][0] == 0.0 and seen[0][1] == 0.0  # step 0: skipped, the loss reads 0
    assert seen[1][0] == pytest.approx(0.1, rel=1e-3) and seen[1][1] == pytest.approx(1.0)  # Adam's first step
    assert seen[2][0] == seen[1][0] and seen[2][1] == 0.0
    # The noise in b's loss is drawn only on the steps that update b.
    assert not np.array_equal(seen[1][2], seen[0][2]) and np.array_equal(seen[2][2], seen[1][2])
    assert int(ops.convert_to_numpy(model.optimizer.players["a"].iterations)) == 4
    assert int(ops.convert_to_numpy(model.optimizer.players["b"].iterations)) == 2


@pytest.mark.jax
def test_plain_references_train_copies_and_the_stack_updates_only_the_generator():
    """The step benchmarks' reference (DCGAN, WGAN): plain D is a copy trained on its own; the stack
    z -> D(G(z)) changes G's weights, not its frozen copy of D, and each player gets its own optimizer."""
    from common import gan

    keras.utils.set_random_seed(0)
    g = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    d = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    asked = []

    def optimizers(player):
        asked.append(player)
        return keras.optimizers.SGD(0.1)

    plain_d, stack = gan.plain_references(g, d, 2, optimizers, "mse")
    assert asked == ["discriminator", "generator"]
    before = {"g": [w.copy() for w in g.get_weights()], "d": [w.copy() for w in d.get_weights()],
              "frozen": [w.copy() for w in stack.layers[-1].get_weights()]}
    assert not stack.layers[-1].trainable and plain_d is not d
    plain_d.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32))
    stack.train_on_batch(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32))
    assert any(not np.allclose(a, b) for a, b in zip(g.get_weights(), before["g"], strict=True))  # G learnt
    for a, b in zip(stack.layers[-1].get_weights(), before["frozen"], strict=True):
        np.testing.assert_array_equal(a, b)  # the frozen copy did not
    for a, b in zip(d.get_weights(), before["d"], strict=True):
        np.testing.assert_array_equal(a, b)  # nor the GAN's own D (plain D is a copy)
