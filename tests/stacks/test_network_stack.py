"""Network stack: isolated subnets, no idle cost by default, flow logs, training security group."""

from __future__ import annotations

from aws_cdk.assertions import Match

from stacks.network_stack import INTERFACE_ENDPOINT_SERVICES
from tests.support.synth import SynthResult


def count(result: SynthResult, cfn_type: str) -> int:
    return len(list(result.resources(cfn_type)))


def test_default_has_no_nat_no_internet_and_no_interface_endpoints(dev: SynthResult) -> None:
    assert count(dev, "AWS::EC2::NatGateway") == 0
    assert count(dev, "AWS::EC2::InternetGateway") == 0
    assert count(dev, "AWS::EC2::EIP") == 0
    interface = [
        r
        for _, _, r in dev.resources("AWS::EC2::VPCEndpoint")
        if r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert interface == []


def test_three_isolated_subnet_groups_over_two_azs(dev: SynthResult) -> None:
    subnets = [r for _, _, r in dev.resources("AWS::EC2::Subnet")]
    assert len(subnets) == 6
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    names = sorted(
        next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-name")
        for s in subnets
    )
    assert names == ["endpoints"] * 2 + ["processing"] * 2 + ["training"] * 2
    types = {
        next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type")
        for s in subnets
    }
    assert types == {"Isolated"}


def test_s3_gateway_endpoint_is_always_there(dev: SynthResult) -> None:
    dev.template("-network").has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Gateway",
            "ServiceName": Match.object_like({"Fn::Join": Match.any_value()}),
        },
    )
    gateway = [
        r
        for _, _, r in dev.resources("AWS::EC2::VPCEndpoint")
        if r["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert len(gateway) == 1
    assert ".s3" in str(gateway[0]["Properties"]["ServiceName"])


def test_nat_gateway_per_az_when_asked(synth) -> None:
    result = synth("dev", **{"network.nat_gateways": 2})
    assert count(result, "AWS::EC2::NatGateway") == 2
    assert count(result, "AWS::EC2::InternetGateway") == 1
    private = [
        r
        for _, _, r in result.resources("AWS::EC2::Subnet")
        if {"Key": "aws-cdk:subnet-type", "Value": "Private"} in r["Properties"]["Tags"]
    ]
    assert len(private) == 6


def test_interface_endpoints_when_asked(prod: SynthResult) -> None:
    interface = [
        r["Properties"]
        for _, _, r in prod.resources("AWS::EC2::VPCEndpoint")
        if r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(interface) == len(INTERFACE_ENDPOINT_SERVICES) == 10
    assert all(p["PrivateDnsEnabled"] is True for p in interface)
    services = " ".join(str(p["ServiceName"]) for p in interface)
    for service in ("sagemaker.api", "sagemaker.runtime", "bedrock-runtime", "sts", "logs",
                    "ecr.api", "ecr.dkr", "states", "ssm"):  # fmt: skip
        assert service in services
    # Endpoints admit HTTPS from the VPC range only.
    prod.template("-network").has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "Interface endpoints: HTTPS from inside the VPC only",
            "SecurityGroupIngress": [
                Match.object_like({"CidrIp": "10.30.0.0/16", "FromPort": 443, "ToPort": 443})
            ],
        },
    )


def test_flow_logs_to_an_encrypted_log_group_with_retention(dev: SynthResult) -> None:
    template = dev.template("-network")
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )
    template.has_resource(
        "AWS::Logs::LogGroup",
        {
            "Properties": {"RetentionInDays": 90, "KmsKeyId": Match.any_value()},
            "DeletionPolicy": "Retain",
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": Match.any_value()},
                                "ArnLike": {"aws:SourceArn": Match.any_value()},
                            },
                        }
                    )
                ]
            }
        },
    )


def test_training_security_group_admits_only_its_members(dev: SynthResult) -> None:
    groups = {
        lid: r
        for _, lid, r in dev.resources("AWS::EC2::SecurityGroup")
        if lid.startswith("TrainingSecurityGroup")
    }
    ((sg_id, sg),) = groups.items()
    assert "SecurityGroupIngress" not in sg["Properties"]  # rules are separate resources
    ingress = [r["Properties"] for _, _, r in dev.resources("AWS::EC2::SecurityGroupIngress")]
    assert ingress == [
        {
            "Description": "Distributed training between members",
            "GroupId": {"Fn::GetAtt": [sg_id, "GroupId"]},
            "IpProtocol": "-1",
            "SourceSecurityGroupId": {"Fn::GetAtt": [sg_id, "GroupId"]},
        }
    ]
    egress_to_internet = [e for e in sg["Properties"]["SecurityGroupEgress"]]
    assert egress_to_internet == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to S3 and AWS API endpoints",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
