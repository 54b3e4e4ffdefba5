"""Ridge regression on scikit-learn's diabetes data set, one child run per alpha.

Run it on a laptop (the metrics are printed) or submit it to atelier:

    atelier run submit examples/sklearn-diabetes --experiment diabetes --wait
"""
import argparse
import os
import pickle

import matplotlib

matplotlib.use("Agg")  # no display on a compute target
import matplotlib.pyplot as plt
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from atelier import Run

parser = argparse.ArgumentParser()
parser.add_argument("--alphas", default="0.01,0.03,0.1,0.3,1.0,3.0",
                    help="comma-separated regularization strengths to try")
parser.add_argument("--test-size", type=float, default=0.2)
args = parser.parse_args()
alphas = [float(a) for a in args.alphas.split(",")]

run = Run.get_context()
run.log_param("test_size", str(args.test_size))
run.tag("model", "ridge")

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=args.test_size, random_state=0)
print(f"{len(X_train)} training and {len(X_test)} test samples")

results = []
for alpha in alphas:
    with run.child_run(f"alpha={alpha}") as child:
        model = Ridge(alpha=alpha).fit(X_train, y_train)
        pred = model.predict(X_test)
        rmse = mean_squared_error(y_test, pred) ** 0.5
        r2 = r2_score(y_test, pred)
        child.log_param("alpha", str(alpha))
        child.log("rmse", rmse)
        child.log("r2", r2)
        print(f"alpha={alpha}: rmse={rmse:.3f} r2={r2:.3f}")
        results.append((alpha, rmse, r2, model))

best_alpha, best_rmse, best_r2, best_model = min(results, key=lambda r: r[1])
run.log("best_alpha", best_alpha)
run.log("best_rmse", best_rmse)
run.log("best_r2", best_r2)
run.log_list("rmse_by_alpha", [r[1] for r in results])
run.log_table("results", {"alpha": [r[0] for r in results], "rmse": [r[1] for r in results],
                          "r2": [r[2] for r in results]})

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx([r[0] for r in results], [r[1] for r in results], marker="o")
ax.set_xlabel("alpha")
ax.set_ylabel("rmse")
ax.set_title("Ridge regression on the diabetes data set")
run.log_image("rmse_vs_alpha", plot=fig)

os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as f:
    pickle.dump(best_model, f)
print(f"best alpha {best_alpha} (rmse {best_rmse:.3f}); model saved to outputs/model.pkl")
