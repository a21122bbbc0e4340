from nnlabs.cli import main

raise SystemExit(main())
