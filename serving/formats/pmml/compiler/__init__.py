"""PMML compiled to vectorised NumPy: the fast engine behind ``PmmlModel``.

:func:`compile_pmml` parses a PMML document (namespace-agnostic, stdlib
``xml.etree``) and returns a :class:`CompiledPmml` that scores float rows with a
few NumPy calls per batch instead of a JVM round trip per call.

The contract is **JPMML-Evaluator's results** (the reference PMML
implementation, the tests' oracle): regressors within 1e-9, classifiers with the
same winning label and probabilities within 1e-9. Where JPMML reads the PMML
specification in a particular way, that reading is reproduced:

* an ensemble reads its members' probabilities by label; a label a member does
  not mention counts as probability 0 in an average;
* the winning label is the highest probability; a tie goes to the label the
  result map holds first: a tree node's ScoreDistribution order, for an
  ensemble the order in which members first mention the labels (first voted,
  for a vote);
* a single tree predicts its final node's ``score``, even where its
  ScoreDistribution favours another class;
* a tree's root predicate is evaluated; an UNKNOWN child ends the walk at once
  under ``nullPrediction``, ``lastPrediction`` and ``defaultChild``;
  ``returnLastPrediction`` only returns a node that has a score;
* a member without a prediction voids the ensemble's (``returnMissing``, and the
  default ``continue`` but in a vote, where it votes for "no prediction"), or is
  skipped (``skipSegment``);
* no prediction is NaN (a label's score as well as a value); the probabilities then are 0.
  Rows JPMML fails to evaluate (every fired member of an average skipped, an
  unavailable chained output, ...) get no prediction too (``Result.failed``).

Where JPMML's own probability outputs are an artefact rather than a reading of
the spec, the sensible value is served: with non-string labels, probability
fields on a ``selectFirst``/``modelChain`` MiningModel read 0 in JPMML; the
compiled engine serves the selected member's probabilities (which JPMML
reports through that member's own OutputFields).

Compiled: ``TreeModel`` (every predicate, with three-valued logic for missing
inputs: Simple with isMissing/isNotMissing, SimpleSet, Compound and/or/xor/
surrogate, True, False; missingValueStrategy none, lastPrediction,
nullPrediction, defaultChild; both noTrueChildStrategy values; binary and multi
splits; ScoreDistribution probabilities from ``probability`` or
``recordCount``; missingValuePenalty, which only scales confidences),
``MiningModel`` (regression: sum, weightedSum, average, weightedAverage, median,
weightedMedian; classification: average, weightedAverage, majorityVote,
weightedMajorityVote; both: selectFirst and modelChain, whose members may read
the ``predictedValue`` and ``probability`` OutputFields of the segments before
them; nested segments; segment predicates), and the families of
:mod:`.models`: RegressionModel (every normalization), GeneralRegressionModel,
NeuralNetwork, NaiveBayesModel, SupportVectorMachineModel and
NearestNeighborModel (a kNN or OneAgainstAll SVM classifier gives a label only,
as JPMML does), with the inputs, transformations and Targets of
:mod:`.inputs`, :mod:`.expressions`, :mod:`.fields` and :mod:`.targets`.

Anything else raises :class:`NotCompilable` with the reason, and the caller
falls back to pypmml: among others ``weightedConfidence`` and
``aggregateNodes`` (JPMML implements neither), max/median/``selectAll``/``sum``
classification ensembles, chained OutputFields other than plain
``predictedValue``/``probability`` or on a segment whose predicate is not
``<True/>``, a ``selectFirst``/``modelChain`` member that names no target, a
nested vote under ``continue``, and documents JPMML itself fails on (a final
tree node without a score, a ScoreDistribution with probabilities for some
entries only or summing to 0, an average over a node without one, an integer
label beyond 32 bits).

The modules, one per PMML element family:

* :mod:`.document`: :func:`compile_pmml` and :class:`CompiledPmml`, the entry points;
* :mod:`.fields`: DataDictionary and MiningSchema: the inputs, the target and its labels;
* :mod:`.expressions`: TransformationDictionary, LocalTransformations, DerivedField and its expressions;
* :mod:`.predicates`: True, False, SimplePredicate, SimpleSetPredicate, CompoundPredicate;
* :mod:`.inputs`, :mod:`.targets`: input types and treatments; Targets;
* :mod:`.functions`, :mod:`.mapping`, :mod:`.links`: built-in functions, MapValues/Discretize, link functions;
* :mod:`.regression`, :mod:`.trees`, :mod:`.mining`: RegressionModel, TreeModel, MiningModel;
* :mod:`.general_regression`, :mod:`.neural`, :mod:`.naive_bayes`, :mod:`.svm`, :mod:`.neighbors`: the other families;
* :mod:`.ensemble`: how a MiningModel combines its members' results;
* :mod:`.models`: the dispatcher from a model element to its family;
* :mod:`.outputs`: Output, and the type of the prediction;
* :mod:`.base`: what every model shares (context, result, base class);
* :mod:`.labels`: class labels, and JPMML's choice of the winning label;
* :mod:`.elements`, :mod:`.evaluation`: reading XML elements; an evaluation's columns and getters.
"""

from serving.formats.pmml.compiler.document import CompiledPmml, compile_pmml
from serving.formats.pmml.compiler.elements import NotCompilable
from serving.formats.pmml.compiler.labels import label_key

__all__ = ["CompiledPmml", "NotCompilable", "compile_pmml", "label_key"]
