"""The users of the per-user benchmarks carry their adaptation half's labels (for label-based reference rows)."""

import numpy as np

from tflite_fineprune.converters.evaluation import class_subset_users, speaker_users


def test_class_subset_users_know_their_adaptation_labels():
    images = [np.arange(100 * c, 100 * c + 100).reshape(100, 1) for c in range(10)]
    for user in class_subset_users(images, class_counts=(2, 3), users_per_count=2, adapt_per_class=20,
                                   eval_per_class=30):
        assert user.adapt_y.shape == (len(user.adapt_x),)
        np.testing.assert_array_equal(user.adapt_x[:, 0] // 100, user.adapt_y)
        assert set(user.adapt_y) == set(user.eval_y)


def test_speaker_users_know_their_adaptation_labels(tmp_path):
    labels = ["no", "yes", "up"]
    for index, label in enumerate(labels):
        (tmp_path / label).mkdir()
        for n in range(12):
            for speaker in ("0a0b0c0d", "1f2e3d4c"):
                (tmp_path / label / f"{speaker}_nohash_{n}.wav").write_bytes(b"")
    (tmp_path / "_background_noise_").mkdir()

    def load_clip(path):  # the "clip" records its folder's label index, so the labels can be checked
        return np.array([labels.index(path.split("/")[-2])])

    users = speaker_users(str(tmp_path), labels, load_clip, min_clips=30)
    assert [u.name for u in users] == ["0a0b0c0d", "1f2e3d4c"]
    for user in users:
        assert len(user.adapt_y) == 18 and len(user.eval_y) == 18
        np.testing.assert_array_equal(user.adapt_x[:, 0], user.adapt_y)
        np.testing.assert_array_equal(user.eval_x[:, 0], user.eval_y)
