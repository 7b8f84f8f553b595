"""Learning the predictors: profile the served model, train, evaluate, retrain on served traffic."""
