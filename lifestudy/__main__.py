import sys

from lifestudy.cli import main

sys.exit(main())
