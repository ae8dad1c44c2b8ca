"""Full fit and predict on the embedded Corel5K, per method."""

from mtlm import METHODS, MTLMAnnotator, load_dataset


class Corel5K:
    params = (list(METHODS),)
    param_names = ["method"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, method):
        self.data = load_dataset("corel5k")
        self.est = MTLMAnnotator(method, metrics=self.data.metrics, random_state=0)
        self.est.fit(self.data.X_train, self.data.Y_train)

    def time_fit(self, method):
        MTLMAnnotator(method, metrics=self.data.metrics, random_state=0).fit(
            self.data.X_train, self.data.Y_train
        )

    def time_predict(self, method):
        self.est.predict(self.data.X_test)

    def peakmem_fit(self, method):
        MTLMAnnotator(method, metrics=self.data.metrics, random_state=0).fit(
            self.data.X_train, self.data.Y_train
        )

    def track_test_f1(self, method):
        from mtlm.metrics import annotation_scores

        return annotation_scores(self.data.Y_test, self.est.predict(self.data.X_test))[
            "F1"
        ]
