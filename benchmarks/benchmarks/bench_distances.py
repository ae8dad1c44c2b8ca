"""BaseDistances.pairwise (kernel K1) for each base distance at a few sizes."""

from mtlm import BaseDistances

from .common import histograms


class Pairwise:
    params = (
        ["l1", "chi2", "l2", "sqeuclidean", "hellinger"],
        [500, 2000],
        [48, 192],
        [1, -1],
    )
    param_names = ["metric", "n", "dims", "n_jobs"]
    timeout = 120

    def setup(self, metric, n, dims, n_jobs):
        self.Xq = histograms(200, [dims], seed=1)
        self.Xp = histograms(n, [dims], seed=2)
        self.bd = BaseDistances(metrics=metric).fit(self.Xp)

    def time_pairwise(self, metric, n, dims, n_jobs):
        self.bd.pairwise(self.Xq, self.Xp, n_jobs=n_jobs)

    def peakmem_pairwise(self, metric, n, dims, n_jobs):
        self.bd.pairwise(self.Xq, self.Xp, n_jobs=n_jobs)

    def track_pair_dims_per_second(self, metric, n, dims, n_jobs):
        import time

        t = time.perf_counter()
        self.bd.pairwise(self.Xq, self.Xp, n_jobs=n_jobs)
        return 200 * n * dims / (time.perf_counter() - t) / 1e9

    track_pair_dims_per_second.unit = "G pair-dims/s"
