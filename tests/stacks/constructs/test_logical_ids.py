"""Resources moved into a construct keep the logical ids they had as the stack's children."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.logical_ids import keep_stack_logical_ids, unique_id


def build(parent: Construct) -> None:
    sns.Topic(parent, "Topic")
    sqs.Queue(parent, "QueueQueue", enforce_ssl=True)  # with a policy: a nested resource
    # A repeated component ("Inner" ends the readable path already) and a hidden "Default".
    inner = Construct(parent, "Inner")
    sns.Topic(Construct(inner, "Default"), "Inner")


def logical_ids(stack: Stack) -> set[str]:
    return set(App.of(stack).synth().get_stack_by_name(stack.stack_name).template["Resources"])


def test_a_wrapped_construct_keeps_the_ids_of_direct_children() -> None:
    direct = Stack(App(), "Direct")
    build(direct)
    wrapped = Stack(App(), "Direct")
    wrapper = Construct(wrapped, "Wrapper")
    build(wrapper)
    before = logical_ids(direct)
    assert len(before) == 4
    keep_stack_logical_ids(wrapper)
    assert logical_ids(wrapped) == before


def test_unique_id_pins_cdk_rules() -> None:
    assert unique_id(["Budget"]) == "Budget"  # top-level: the id itself
    assert unique_id(["Default", "Bucket"]) == "Bucket"
    # Readable part without "Resource", hash over the whole path.
    assert unique_id(["GaugeRole", "Resource"]) == "GaugeRoleC908D67B"
