"""PMML compiled to vectorised NumPy: the fast engine behind ``PmmlModel``.

:func:`compile_pmml` parses a PMML document (namespace-agnostic, stdlib
``xml.etree``) and returns a :class:`CompiledPmml` that scores float rows with a
few NumPy calls per batch instead of a JVM round trip per call.

The contract is **pypmml's results, not the PMML specification's**: pypmml
(PMML4S 1.5 in a JVM) is the engine this replaces and the oracle it is tested
against, so its observable behaviour is reproduced, quirks included:

* a probability the evaluator does not know is NaN, and NaN propagates: an
  ensemble ``average`` over trees whose leaves omit a class gives NaN for that
  class (the result rule then reports 0);
* the predicted class of an ensemble or a regression classifier is PMML4S's
  ``maxBy`` over a Scala immutable ``Map``: the first maximum in the map's
  iteration order, where NaN is greater than any number. Maps of up to four
  classes iterate in insertion order, larger ones in Scala 2.13's CHAMP hash
  order, which :func:`scala_map_order` reproduces from the labels' Scala hashes;
* a single tree predicts its leaf's ``score`` attribute, not the most probable class;
* an ensemble reads each member's probabilities by *position* in the output
  layout of the first selected member, so members whose layouts differ (as
  JPMML-SparkML's forest trees, which name no target and so take their classes
  from their first leaf) contribute whatever sits at that position, or NaN;
* ``nullPrediction`` still lets ``noTrueChildStrategy="returnLastPrediction"``
  return the last node; a missing integer label comes out as Long.MIN_VALUE;
  infinities come out as null.

Compiled: ``RegressionModel`` (regression with every normalisation but probit;
classification with softmax, simplemax, none, binary logit), ``TreeModel``
(multi-way or binary; Simple, SimpleSet, Compound and/or, True, False
predicates with three-valued logic; missingValueStrategy none, lastPrediction,
nullPrediction; both noTrueChildStrategy values; ScoreDistribution probabilities
from ``probability`` or recordCount/total), ``MiningModel`` segmentation
(average, weightedAverage, majorityVote, weightedMajorityVote for classification;
average, weightedAverage, sum, weightedSum for regression; nested segments), and
DerivedFields in TransformationDictionary/LocalTransformations built from
FieldRef, Constant, NormContinuous and Apply with arithmetic functions.

Inputs are the active MiningFields of the top-level model, continuous doubles.
Our records only ever carry finite floats, so MiningField treatments that only
act on missing, invalid or outlying inputs are irrelevant; anything whose
semantics is not implemented here (other model types, Targets, categorical
inputs, outlier treatment, modelChain, xor and surrogate predicates, ...) raises
:class:`NotCompilable`, and the caller falls back to pypmml.

The modules, one per PMML element family:

* :mod:`.document`: :func:`compile_pmml` and :class:`CompiledPmml`, the entry points;
* :mod:`.fields`: DataDictionary and MiningSchema: the inputs, the target and its labels;
* :mod:`.expressions`: TransformationDictionary, LocalTransformations, DerivedField and its expressions;
* :mod:`.predicates`: True, False, SimplePredicate, SimpleSetPredicate, CompoundPredicate;
* :mod:`.regression`, :mod:`.trees`, :mod:`.mining`: RegressionModel, TreeModel, MiningModel;
* :mod:`.models`: the dispatcher from a model element to its family;
* :mod:`.outputs`: Output, as PMML4S lays out a model's outputs and types its prediction;
* :mod:`.base`: what every model shares (context, result, base class);
* :mod:`.labels`, :mod:`.scala`: class labels, and PMML4S's Scala hashing and ``maxBy``;
* :mod:`.elements`, :mod:`.evaluation`: reading XML elements; an evaluation's columns and getters.
"""

from serving.formats.pmml.compiler.document import CompiledPmml, compile_pmml
from serving.formats.pmml.compiler.elements import NotCompilable
from serving.formats.pmml.compiler.labels import label_key
from serving.formats.pmml.compiler.scala import scala_hash, scala_map_order

__all__ = ["CompiledPmml", "NotCompilable", "compile_pmml", "label_key", "scala_hash", "scala_map_order"]
