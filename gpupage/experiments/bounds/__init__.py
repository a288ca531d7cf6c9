"""Every theoretical result of the paper, measured: ``gpupage bounds --out DIR``.

One module per result family, each returning ``bounds.json`` entries::

    {"id", "statement", "bound", "measured", "slack", "holds", "counterexample", "details"}

``holds`` is decided on integers wherever the quantity is an integer (fault
counts, Hamming distances), so a bound that is met with equality holds and one
exceeded by a single fault does not.

* ``config``: :class:`BoundsConfig` and the helpers every section shares.
* ``lemma1``: Lemma 1a (|F_A(r) - F_A(r')| / d_H on Zipf traces, and the smallest
  single-change counterexamples of ``search``) and Lemma 1b (retrieval noise).
* ``search``: the counterexample search (hill climbing, greedy shrinking, an exhaustive
  check) on a small exact simulator.
* ``theorem3``: the cyclic adversary against the exact finite-T ratio.
* ``theorem4``: closed-loop traces, beta-hat by the protocol of Sec. 3.3.2, the bound with
  c = K_b and with the empirical c.
* ``corollary1``: the thrashing knee at K_b = W.
* ``instance``: the empirical competitive ratio per trace distribution (open problem 1).
* ``prop6``: the learned controller's bound (``gpupage.controller.evaluate.prop6``), else
  a noisy-Belady policy's.
* ``eta``: the learning-augmented baselines against prediction noise.
* ``run``: the driver (``BoundsConfig``, ``run_bounds``, ``progress_steps``); ``report``
  renders ``report.md`` and ``plots`` draws the PNGs, apart from the measurements.

May import: ``gpupage.core``, ``gpupage.zoo``, ``gpupage.controller``, and the other
experiment modules.
"""
