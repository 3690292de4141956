from polyplib.cli import main

raise SystemExit(main())
