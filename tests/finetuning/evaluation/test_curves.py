"""Loss curves from Bedrock's and train.py's metrics files, local and on S3 (moto)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from finetuning.evaluation.curves import CurveError, read_loss_curves, read_metrics_csv

BEDROCK_TRAINING = (
    "step_number,epoch_number,training_loss,perplexity\n"
    "0,0,2.5,12.18\n1,0,2.1,8.17\n2,1,1.7,5.47\n3,1,1.4,4.06\n"
)
BEDROCK_VALIDATION = (
    "step_number,epoch_number,validation_loss,perplexity\n1,0,2.2,9.0\n3,1,1.6,4.9\n"
)
TRAIN_PY = (
    "step,epoch,loss,learning_rate,tokens_per_second\n"
    "10,0.5,1.9,0.0002,1500.0\n20,1.0,1.2,0.0001,1520.5\n"
)


def bedrock_output(root):
    training = root / "model-customization-job-abc" / "training_artifacts"
    validation = (
        root
        / "model-customization-job-abc"
        / "validation_artifacts"
        / "post_fine_tuning_validation"
    )
    training.mkdir(parents=True)
    validation.mkdir(parents=True)
    (training / "step_wise_training_metrics.csv").write_text(BEDROCK_TRAINING)
    (validation / "validation_metrics.csv").write_text(BEDROCK_VALIDATION)
    return root


def test_bedrock_output_folder(tmp_path):
    curves = read_loss_curves([str(bedrock_output(tmp_path))])
    assert [(p.step, p.loss, p.epoch) for p in curves.training] == [
        (0, 2.5, 0),
        (1, 2.1, 0),
        (2, 1.7, 1),
        (3, 1.4, 1),
    ]
    assert [(p.step, p.loss) for p in curves.validation] == [(1, 2.2), (3, 1.6)]
    assert len(curves.sources) == 2


def test_train_py_csv_with_eval_rows(tmp_path):
    path = tmp_path / "training_metrics.csv"
    path.write_text(
        "step,epoch,loss,learning_rate,tokens_per_second,eval_loss\n"
        "10,0.5,1.9,0.0002,1500.0,\n20,1.0,1.2,0.0001,1520.5,\n20,1.0,,,,1.35\n"
    )
    curves = read_metrics_csv(path)
    assert [(p.step, p.loss) for p in curves.training] == [(10, 1.9), (20, 1.2)]
    assert [(p.step, p.loss) for p in curves.validation] == [(20, 1.35)]


def test_train_py_output_folder_with_eval_file(tmp_path):
    (tmp_path / "training_metrics.csv").write_text(TRAIN_PY)
    (tmp_path / "eval_metrics.csv").write_text(
        "step,epoch,eval_loss,eval_perplexity\n10,0.5,2.0,7.39\n20,1.0,1.3,3.67\n"
    )
    curves = read_loss_curves([str(tmp_path)])
    assert [(p.step, p.loss) for p in curves.training] == [(10, 1.9), (20, 1.2)]
    assert [(p.step, p.loss) for p in curves.validation] == [(10, 2.0), (20, 1.3)]


def test_train_py_csv_plain(tmp_path):
    path = tmp_path / "training_metrics.csv"
    path.write_text(TRAIN_PY)
    curves = read_loss_curves([str(path)])
    assert [p.loss for p in curves.training] == [1.9, 1.2]
    assert not curves.validation


def test_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "training_metrics.csv"
    path.write_text("step,epoch,loss\n1,0,0.5\n2,0,abc\n")
    message = r"training_metrics.csv: line 3: column loss: expected a number, got 'abc'"
    with pytest.raises(CurveError, match=message):
        read_metrics_csv(path)
    path.write_text("when,what\n1,2\n")
    with pytest.raises(CurveError, match="line 1: expected a step column"):
        read_metrics_csv(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurveError, match="no training metrics found"):
        read_loss_curves([str(tmp_path / "empty")])
    with pytest.raises(CurveError, match="not found"):
        read_loss_curves([str(tmp_path / "missing.csv")])


def test_s3_prefix(fake_aws_credentials, tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        base = "bedrock/job-1/model-customization-job-abc/"
        s3.put_object(
            Bucket="artifacts",
            Key=base + "training_artifacts/step_wise_training_metrics.csv",
            Body=BEDROCK_TRAINING.encode(),
        )
        s3.put_object(
            Bucket="artifacts",
            Key=base + "validation_artifacts/post_fine_tuning_validation/validation_metrics.csv",
            Body=BEDROCK_VALIDATION.encode(),
        )
        s3.put_object(Bucket="artifacts", Key=base + "other.csv", Body=b"x")
        curves = read_loss_curves(["s3://artifacts/bedrock/job-1/"], s3_client=s3)
        assert len(curves.training) == 4 and len(curves.validation) == 2
        assert curves.sources[0] == (
            "s3://artifacts/" + base + "training_artifacts/step_wise_training_metrics.csv"
        )
        with pytest.raises(CurveError, match="s3://artifacts/nothing/: no training metrics"):
            read_loss_curves(["s3://artifacts/nothing/"], s3_client=s3)
