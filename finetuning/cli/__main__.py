import sys

from finetuning.cli import main

sys.exit(main())
